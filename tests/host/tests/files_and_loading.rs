//! File mounts, and load-time errors that `spin up` would also raise.

mod common;

use common::{start, wasm_path, TempDir};
use shop_test_host::{HostOptions, RunningHost};

fn read(app: &common::TestHost, path: &str) -> common::Reply {
    app.get("/probe/file", &[("x-action", "file"), ("x-path", path)])
}

#[test]
fn directory_and_glob_mounts_are_readable() {
    let app = start(&[]);
    assert_eq!(
        read(&app, "/static/hello.txt").ok()["content"],
        "hello from static\n"
    );
    assert_eq!(
        read(&app, "/static/nested/inner.txt").ok()["content"],
        "nested file\n"
    );
    assert_eq!(read(&app, "/data/a.txt").ok()["content"], "alpha\n");
    // `data/*.txt` does not bring in other files.
    assert!(read(&app, "/data/b.md").error().contains("No such file"));
    // Nothing outside the mounts, and no mounts for components without `files`.
    assert!(read(&app, "/spin.toml").error().contains("No such file"));
    let limited = app.get(
        "/limited/file",
        &[("x-action", "file"), ("x-path", "/static/hello.txt")],
    );
    assert_eq!(limited.status, 500);
}

#[test]
fn mounts_are_read_only() {
    let app = start(&[]);
    let reply = app.post(
        "/probe/write",
        &[("x-action", "write-file"), ("x-path", "/static/new.txt")],
        "x",
    );
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(read(&app, "/static/new.txt")
        .error()
        .contains("No such file"));
}

fn probe_app(dir: &TempDir, component_extra: &str, runtime_config: Option<&str>) -> HostOptions {
    common::require_fixtures();
    let manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"t\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = {:?}\n{component_extra}\n",
        wasm_path("fixture_probe").display().to_string(),
    );
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    let runtime_config = runtime_config.map(|text| {
        let p = dir.path().join("runtime-config.toml");
        std::fs::write(&p, text).unwrap();
        p
    });
    HostOptions {
        manifest: path,
        runtime_config,
        state_dir: dir.path().join("state"),
        variables: Default::default(),
        listen: "127.0.0.1:0".parse().unwrap(),
    }
}

#[test]
fn non_default_labels_must_be_declared_in_runtime_config() {
    let dir = TempDir::new("load");
    let err = RunningHost::start(probe_app(&dir, "sqlite_databases = [\"orders\"]", None))
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("[sqlite_database.orders]"),
        "{err:#}"
    );
    let err = RunningHost::start(probe_app(&dir, "key_value_stores = [\"carts\"]", None))
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("[key_value_store.carts]"),
        "{err:#}"
    );

    let declared = "[sqlite_database.orders]\ntype = \"spin\"\npath = \"/nowhere/orders.db\"\n";
    let host = RunningHost::start(probe_app(
        &dir,
        "sqlite_databases = [\"orders\"]",
        Some(declared),
    ))
    .unwrap();
    let reply = common::request(
        host.addr(),
        "POST",
        "/",
        &[("x-action", "sql"), ("x-db", "orders")],
        br#"[{"sql": "SELECT 1"}]"#,
    );
    assert_eq!(reply.ok()["results"][0]["rows"], serde_json::json!([[1]]));
    // Stored under the state dir, not at the configured path.
    assert!(dir.path().join("state/sqlite/orders.db").is_file());
}

#[test]
fn unsupported_store_types_are_rejected() {
    let dir = TempDir::new("load");
    // Redis key-value is served (tests/redis_key_value.rs); these are not.
    let config = "[key_value_store.default]\ntype = \"azure_cosmos\"\naccount = \"a\"\n";
    let err = RunningHost::start(probe_app(&dir, "", Some(config)))
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("azure_cosmos"), "{err:#}");
    let config = "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"https://db.example\"\ntoken = \"t\"\n";
    let err = RunningHost::start(probe_app(&dir, "", Some(config)))
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("libsql"), "{err:#}");
}

#[test]
fn missing_wasm_is_a_clear_error() {
    let dir = TempDir::new("load");
    std::fs::write(
        dir.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"t\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = \"target/nothing.wasm\"\n",
    )
    .unwrap();
    let opts = HostOptions {
        manifest: dir.path().join("spin.toml"),
        runtime_config: None,
        state_dir: dir.path().join("state"),
        variables: Default::default(),
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let err = RunningHost::start(opts).err().unwrap();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("nothing.wasm") && msg.contains("component `c`"),
        "{msg}"
    );
}

#[test]
fn invalid_allowed_outbound_hosts_fail_the_load() {
    let dir = TempDir::new("load");
    let err = RunningHost::start(probe_app(
        &dir,
        "allowed_outbound_hosts = [\"example.com\"]",
        None,
    ))
    .err()
    .unwrap();
    assert!(format!("{err:#}").contains("needs a scheme"), "{err:#}");
}

#[test]
fn start_and_drop_work_inside_a_callers_tokio_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = TempDir::new("lifecycle");
        // A failed load must return an error, not panic on runtime drop.
        assert!(
            RunningHost::start(probe_app(&dir, "key_value_stores = [\"nope\"]", None)).is_err()
        );
        let host = RunningHost::start(probe_app(&dir, "", None)).unwrap();
        let addr = host.addr();
        let reply =
            tokio::task::spawn_blocking(move || common::request(addr, "GET", "/x", &[], b""))
                .await
                .unwrap();
        assert_eq!(reply.ok()["probe"], "");
        drop(host);
    });
}
