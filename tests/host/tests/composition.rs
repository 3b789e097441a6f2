//! Component dependencies composed with wac-graph, and load-time import
//! checking.

mod common;

use common::{start, wasm_path, TempDir};
use shop_test_host::{HostOptions, RunningHost};

#[test]
fn dependency_is_composed_and_inherits_the_parents_grants() {
    let app = start(&[("greeting", "welcome back")]);
    let reply = app.get("/greet/ada", &[]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Line 1: pure export of the dependency. Line 2: the dependency read a
    // variable through the parent's mapping (inherited configuration).
    assert_eq!(reply.body, "hello, ada\nwelcome back");
}

fn client_manifest(dir: &TempDir, component_extra: &str) -> HostOptions {
    common::require_fixtures();
    let manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"t\"\n\
         [variables]\ngreeting = {{ default = \"hi\" }}\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"client\"\n\
         [component.client]\nsource = {:?}\n{component_extra}\n[component.client.variables]\ngreeting = \"{{{{ greeting }}}}\"\n",
        wasm_path("fixture_greeter_client").display().to_string(),
    );
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    HostOptions {
        manifest: path,
        runtime_config: None,
        state_dir: dir.path().join("state"),
        variables: Default::default(),
        listen: "127.0.0.1:0".parse().unwrap(),
    }
}

fn dependency_table() -> String {
    format!(
        "[component.client.dependencies]\n\"shop:fixture/greeter@0.1.0\" = {{ path = {:?} }}\n",
        wasm_path("fixture_greeter").display().to_string()
    )
}

#[test]
fn dependency_using_spin_interfaces_needs_inherited_configuration() {
    let dir = TempDir::new("compose");
    let err = RunningHost::start(client_manifest(&dir, &dependency_table()))
        .err()
        .expect("load must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("dependencies_inherit_configuration"), "{msg}");
    assert!(msg.contains("fermyon:spin/variables"), "{msg}");
}

#[test]
fn package_key_plugs_all_of_its_interfaces() {
    let dir = TempDir::new("compose");
    let table = format!(
        "dependencies_inherit_configuration = true\n[component.client.dependencies]\n\"shop:fixture@0.1.0\" = {{ path = {:?} }}\n",
        wasm_path("fixture_greeter").display().to_string()
    );
    let host = RunningHost::start(client_manifest(&dir, &table)).unwrap();
    let reply = common::request(host.addr(), "GET", "/grace", &[], b"");
    assert_eq!(reply.body, "hello, grace\nhi");
}

#[test]
fn unprovided_import_fails_the_load_naming_it() {
    let dir = TempDir::new("compose");
    // No dependency table: nothing provides shop:fixture/greeter.
    let err = RunningHost::start(client_manifest(&dir, ""))
        .err()
        .expect("load must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("shop:fixture/greeter@0.1.0"), "{msg}");
    assert!(msg.contains("component `client`"), "{msg}");
}
