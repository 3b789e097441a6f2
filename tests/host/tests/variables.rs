//! `fermyon:spin/variables@2.0.0`: defaults, environment and per-test
//! overrides, templates, and the rule that a component reads only the
//! variables it maps.

mod common;

use common::{start, TempDir};
use shop_test_host::{HostOptions, RunningHost};

fn var(app: &common::TestHost, component: &str, name: &str) -> common::Reply {
    app.get(
        &format!("/{component}/var"),
        &[("x-action", "var"), ("x-name", name)],
    )
}

#[test]
fn default_template_env_and_override() {
    // Only this test binary sets it, and only this test reads `from_env`.
    std::env::set_var("SPIN_VARIABLE_FROM_ENV", "from-the-environment");
    // An override beats both the environment and the default.
    std::env::set_var("SPIN_VARIABLE_OVERRIDDEN", "env-loses");
    let app = start(&[("overridden", "per-test-value")]);
    assert_eq!(var(&app, "probe", "plain").ok()["value"], "plain-default");
    assert_eq!(
        var(&app, "probe", "templated").ok()["value"],
        "before-plain-default-after"
    );
    assert_eq!(
        var(&app, "probe", "from_env").ok()["value"],
        "from-the-environment"
    );
    assert_eq!(
        var(&app, "probe", "overridden").ok()["value"],
        "per-test-value"
    );
}

#[test]
fn unmapped_and_invalid_names_are_refused() {
    let app = start(&[]);
    // `limited` maps no variables, even though `plain` is an app variable.
    assert!(var(&app, "limited", "plain").error().contains("Undefined"));
    // `upstream` is an app variable that `probe` does not map.
    assert!(var(&app, "probe", "upstream").error().contains("Undefined"));
    assert!(var(&app, "probe", "Not-Valid")
        .error()
        .contains("InvalidName"));
}

fn write_manifest(dir: &TempDir, body: &str) -> std::path::PathBuf {
    let wasm = common::wasm_path("fixture_probe");
    let manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"t\"\n{body}\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = {:?}\n[component.c.variables]\nsecret = \"{{{{ api_key }}}}\"\n",
        wasm.display().to_string()
    );
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

fn options(manifest: std::path::PathBuf, state: &TempDir, vars: &[(&str, &str)]) -> HostOptions {
    common::require_fixtures();
    HostOptions {
        manifest,
        runtime_config: None,
        state_dir: state.path().to_path_buf(),
        variables: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        listen: "127.0.0.1:0".parse().unwrap(),
    }
}

#[test]
fn required_variable_must_be_supplied() {
    let dir = TempDir::new("vars");
    let manifest = write_manifest(
        &dir,
        "[variables]\napi_key = { required = true, secret = true }",
    );
    let err = RunningHost::start(options(manifest.clone(), &dir, &[]))
        .err()
        .expect("load must fail");
    assert!(format!("{err:#}").contains("api_key"), "{err:#}");

    let host = RunningHost::start(options(manifest, &dir, &[("api_key", "sk_test")])).unwrap();
    let reply = common::request(
        host.addr(),
        "GET",
        "/",
        &[("x-action", "var"), ("x-name", "secret")],
        b"",
    );
    assert_eq!(reply.ok()["value"], "sk_test");
}

#[test]
fn template_naming_an_unknown_variable_fails_the_load() {
    let dir = TempDir::new("vars");
    let manifest = write_manifest(&dir, "[variables]\nother = { default = \"x\" }");
    let err = RunningHost::start(options(manifest, &dir, &[]))
        .err()
        .expect("load must fail");
    assert!(
        format!("{err:#}").contains("undefined application variable `api_key`"),
        "{err:#}"
    );
}

#[test]
fn override_of_an_undeclared_variable_is_an_error() {
    let dir = TempDir::new("vars");
    let manifest = write_manifest(&dir, "[variables]\napi_key = { default = \"x\" }");
    let err = RunningHost::start(options(manifest, &dir, &[("typo", "1")]))
        .err()
        .expect("load must fail");
    assert!(format!("{err:#}").contains("typo"), "{err:#}");
}
