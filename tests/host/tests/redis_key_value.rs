//! Key-value on Redis (`[key_value_store.carts] type = "redis"`), through
//! both guest interfaces, against a real `redis-server` started per test:
//! every operation sends what Spin's Redis store sends, and compare-and-swap
//! reports `cas-failed` after its write went through, as Spin's does (the
//! `UNWATCH <key>` defect). Needs `redis-server` on the PATH (these tests
//! fail without it, they never skip).

mod common;

use common::{fixture_options, TempDir, TestHost};
use serde_json::{json, Value};
use shop_test_host::redis_server::RedisServer;
use shop_test_host::RunningHost;
use std::path::PathBuf;
use std::sync::Arc;

/// Writes a runtime config putting `carts` on `url` (and `default` on SQLite).
fn runtime_config(dir: &TempDir, carts: &str) -> PathBuf {
    let path = dir.path().join("runtime-config.toml");
    std::fs::write(
        &path,
        format!("[key_value_store.carts]\n{carts}\n\n[sqlite_database.catalog]\ntype = \"spin\"\n"),
    )
    .unwrap();
    path
}

/// The fixture app with `carts` on the given Redis server.
fn start_on(redis_url: &str) -> (TestHost, TempDir) {
    let config_dir = TempDir::new("rc");
    let config = runtime_config(
        &config_dir,
        &format!("type = \"redis\"\nurl = \"{redis_url}\""),
    );
    let state = TempDir::new("state");
    let mut options = fixture_options(state.path(), &[]);
    options.runtime_config = Some(config);
    let host = RunningHost::start(options).expect("fixture app starts with carts on Redis");
    (TestHost { host, state }, config_dir)
}

fn wkv(app: &TestHost, op: &str, key: &str, extra: &[(&str, &str)], body: &str) -> common::Reply {
    let mut headers = vec![
        ("x-action", "wkv"),
        ("x-store", "carts"),
        ("x-op", op),
        ("x-key", key),
    ];
    headers.extend_from_slice(extra);
    app.post("/probe/wkv", &headers, body)
}

fn kv(app: &TestHost, store: &str, op: &str, key: &str, value: &str) -> common::Reply {
    app.post(
        "/probe/kv",
        &[
            ("x-action", "kv"),
            ("x-store", store),
            ("x-op", op),
            ("x-key", key),
        ],
        value,
    )
}

fn redis_get(server: &RedisServer, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut server.connect())
        .unwrap()
}

#[test]
fn both_interfaces_read_and_write_the_redis_server() {
    let server = RedisServer::start();
    let (app, _config) = start_on(&server.url());

    // wasi → Redis → fermyon, and back.
    wkv(&app, "set", "from-wasi", &[], "w-value").ok();
    assert_eq!(
        redis_get(&server, "from-wasi").as_deref(),
        Some(&b"w-value"[..])
    );
    assert_eq!(
        kv(&app, "carts", "get", "from-wasi", "").ok()["value"],
        "w-value"
    );
    kv(&app, "carts", "set", "from-fermyon", "f-value").ok();
    assert_eq!(
        wkv(&app, "get", "from-fermyon", &[], "").ok()["value"],
        "f-value"
    );
    // Written by someone else entirely: visible too.
    let () = redis::cmd("SET")
        .arg("from-outside")
        .arg(&b"caf\xc3\xa9"[..])
        .query(&mut server.connect())
        .unwrap();
    assert_eq!(
        wkv(&app, "get", "from-outside", &[], "").ok()["value"],
        "café"
    );
    assert_eq!(
        wkv(&app, "exists", "from-outside", &[], "").ok()["value"],
        true
    );
    assert_eq!(wkv(&app, "exists", "nope", &[], "").ok()["value"], false);
    assert_eq!(wkv(&app, "get", "nope", &[], "").ok()["value"], Value::Null);

    // list-keys / get-keys are `KEYS *`: the whole server's keys.
    assert_eq!(
        wkv(&app, "keys", "", &[], "").ok()["value"],
        json!({ "keys": ["from-fermyon", "from-outside", "from-wasi"], "cursor": null })
    );
    assert_eq!(
        kv(&app, "carts", "keys", "", "").ok()["value"],
        json!(["from-fermyon", "from-outside", "from-wasi"])
    );
    assert!(wkv(&app, "keys", "", &[("x-cursor", "x")], "")
        .error()
        .contains("cursor not supported"));

    wkv(&app, "delete", "from-outside", &[], "").ok();
    assert_eq!(redis_get(&server, "from-outside"), None);
    kv(&app, "carts", "delete", "from-fermyon", "").ok();
    assert_eq!(redis_get(&server, "from-fermyon"), None);

    // Other labels stay on SQLite, under the state dir.
    kv(&app, "default", "set", "local", "sqlite").ok();
    assert_eq!(redis_get(&server, "local"), None);
    assert!(app.state.path().join("key_value/default.db").is_file());
    assert!(!app.state.path().join("key_value/carts.db").exists());
}

#[test]
fn increment_is_incrby_atomic_and_stored_as_decimal_text() {
    let server = RedisServer::start();
    let (app, _config) = start_on(&server.url());
    let app = Arc::new(app);
    const N: i64 = 20;
    let handles: Vec<_> = (1..=N)
        .map(|delta| {
            let app = app.clone();
            std::thread::spawn(move || {
                wkv(&app, "incr", "hits", &[("x-delta", &delta.to_string())], "").ok()["value"]
                    .as_i64()
                    .unwrap()
            })
        })
        .collect();
    let mut returned: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    returned.sort();
    returned.dedup();
    let total = N * (N + 1) / 2;
    assert_eq!(
        returned.len(),
        N as usize,
        "two increments saw the same total"
    );
    assert_eq!(*returned.last().unwrap(), total);
    // Redis keeps it as text (the SQLite store: 8 little-endian bytes).
    assert_eq!(
        redis_get(&server, "hits"),
        Some(total.to_string().into_bytes())
    );
    assert_eq!(
        wkv(&app, "get-bytes", "hits", &[], "").ok()["value"],
        json!(total.to_string().into_bytes())
    );
    // Not a number: the server's error, as `other`.
    wkv(&app, "set", "text", &[], "hello").ok();
    let error = wkv(&app, "incr", "text", &[("x-delta", "1")], "").error();
    assert!(
        error.contains("Other") && error.contains("not an integer"),
        "{error}"
    );
}

#[test]
fn batch_operations_send_what_spin_sends() {
    let server = RedisServer::start();
    let (app, _config) = start_on(&server.url());
    // set-many is MSET.
    wkv(
        &app,
        "set-many",
        "",
        &[],
        &json!({ "a": "1", "b": "2", "c": "3" }).to_string(),
    )
    .ok();
    assert_eq!(redis_get(&server, "b"), Some(b"2".to_vec()));
    // get-many is `KEYS k1 k2 ...` in Spin (not MGET), which Redis refuses.
    let error = wkv(&app, "get-many", "", &[], r#"["a","c"]"#).error();
    assert!(
        error.contains("Other") && error.contains("wrong number of arguments"),
        "{error}"
    );
    // An empty list never reaches the store.
    assert_eq!(
        wkv(&app, "get-many", "", &[], "[]").ok()["value"],
        json!([])
    );
    // delete-many is DEL.
    wkv(&app, "delete-many", "", &[], r#"["a","b","missing"]"#).ok();
    assert_eq!(redis_get(&server, "a"), None);
    assert_eq!(redis_get(&server, "c"), Some(b"3".to_vec()));
}

/// The defect, as on a real `spin up` with Redis: `swap` answers
/// `cas-failed` even when its `SET` was applied — and also when it really
/// lost to another writer. Only reading the key tells the two apart.
#[test]
fn swap_reports_cas_failed_even_when_its_write_went_through() {
    let server = RedisServer::start();
    let (app, _config) = start_on(&server.url());
    let report = wkv(&app, "cas-conflict", "c", &[], "").ok()["value"].clone();
    // `current` saw "A", then another connection wrote "B": the WATCH is
    // real, EXEC is aborted, "C" is never written.
    assert_eq!(report["seen"], "A");
    assert_eq!(report["first"], "cas-failed");
    // The handle handed back is a new one, refreshed (and watching).
    assert_eq!(report["handed_back_current"], "B");
    // Nobody interferes with the retry: its SET is applied ...
    assert_eq!(report["after"], "D");
    assert_eq!(redis_get(&server, "c"), Some(b"D".to_vec()));
    // ... and still the swap reports failure.
    let retry = report["retry"].as_str().unwrap();
    assert!(retry.contains("CasFailed"), "{retry}");
    // No `current` (nothing watched): an unconditional write over what was
    // inserted meanwhile, reported as failed too.
    assert_eq!(report["missing_swap"], "cas-failed");
    assert_eq!(report["missing_after"], "blind");
    assert_eq!(redis_get(&server, "c-missing"), Some(b"blind".to_vec()));
}

#[test]
fn an_unreachable_server_fails_open_with_other() {
    // Nothing listens on this loopback port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (app, _config) = start_on(&format!("redis://127.0.0.1:{port}"));
    let error = wkv(&app, "get", "k", &[], "").error();
    assert!(error.contains("Other"), "{error}");
    let error = kv(&app, "carts", "get", "k", "").error();
    assert!(error.contains("Other"), "{error}");
    // The SQLite labels are unaffected.
    kv(&app, "default", "set", "k", "v").ok();
}

#[test]
fn runtime_config_types_the_host_cannot_serve_are_refused_at_load() {
    let load = |carts: &str| {
        let config_dir = TempDir::new("rc");
        let state = TempDir::new("state");
        let mut options = fixture_options(state.path(), &[]);
        options.runtime_config = Some(runtime_config(&config_dir, carts));
        match RunningHost::start(options) {
            Ok(_) => panic!("loaded with [key_value_store.carts] {carts}"),
            Err(e) => format!("{e:#}"),
        }
    };
    let e = load("type = \"redis\"");
    assert!(
        e.contains("[key_value_store.carts]") && e.contains("needs `url`"),
        "{e}"
    );
    let e = load("type = \"redis\"\nurl = \"not a url\"");
    assert!(e.contains("Invalid Redis URL"), "{e}");
    let e = load("type = \"redis\"\nurl = \"rediss://127.0.0.1:6380\"");
    assert!(e.contains("only `redis://`"), "{e}");
    let e = load("type = \"azure_cosmos\"\naccount = \"x\"");
    assert!(e.contains("type `azure_cosmos` is not supported"), "{e}");
}
