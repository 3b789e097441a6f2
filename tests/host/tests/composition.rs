//! Component dependencies composed with wac-graph, and load-time import
//! checking.

mod common;

use common::{start, wasm_path, TempDir};
use shop_test_host::{HostOptions, RunningHost};

#[test]
fn dependency_is_composed_and_inherits_the_parents_grants() {
    // tests/fixtures/spin.toml: package key "shop:fixture@0.1.0" plus
    // interface key "shop:fixture-echo/echo@0.1.0", like the shop's orders.
    let app = start(&[("greeting", "welcome back")]);
    let reply = app.get("/greet/ada", &[]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Line 1: pure export of the dependency. Line 2: the dependency read a
    // variable through the parent's mapping (inherited configuration).
    // Line 3: farewell came from the instance that served greet (package
    // key = one instance). Line 4: echo came from a second instance.
    assert_eq!(
        reply.body,
        "hello, ada\nwelcome back\ngoodbye, ada (greeted 1)\necho: ada (greeted 0)"
    );
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

fn greeter_wasm() -> String {
    wasm_path("fixture_greeter").display().to_string()
}

/// `[component.client.dependencies]` with the given keys, all pointing at
/// the greeter wasm; `inherit` sets `dependencies_inherit_configuration`.
fn dependency_table(inherit: bool, keys: &[&str]) -> String {
    let mut table = String::new();
    if inherit {
        table.push_str("dependencies_inherit_configuration = true\n");
    }
    table.push_str("[component.client.dependencies]\n");
    for key in keys {
        table.push_str(&format!("{key:?} = {{ path = {:?} }}\n", greeter_wasm()));
    }
    table
}

fn load_error(table: &str) -> String {
    let dir = TempDir::new("compose");
    let err = RunningHost::start(client_manifest(&dir, table))
        .err()
        .expect("load must fail");
    format!("{err:#}")
}

fn body(table: &str, path: &str) -> String {
    let dir = TempDir::new("compose");
    let host = RunningHost::start(client_manifest(&dir, table)).unwrap();
    let reply = common::request(host.addr(), "GET", path, &[], b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

const ECHO: &str = "shop:fixture-echo/echo@0.1.0";

#[test]
fn dependency_using_spin_interfaces_needs_inherited_configuration() {
    let msg = load_error(&dependency_table(false, &["shop:fixture@0.1.0", ECHO]));
    assert!(msg.contains("dependencies_inherit_configuration"), "{msg}");
    assert!(msg.contains("fermyon:spin/variables"), "{msg}");
}

#[test]
fn two_interface_keys_of_one_package_collide_as_in_spin() {
    // Spin registers both under the package name `shop:fixture`; wac-graph
    // refuses the second, so `spin up` fails.
    let msg = load_error(&dependency_table(
        true,
        &[
            "shop:fixture/greeter@0.1.0",
            "shop:fixture/farewell@0.1.0",
            ECHO,
        ],
    ));
    assert!(
        msg.contains("package `shop:fixture` has already been registered in the graph"),
        "{msg}"
    );
    assert!(msg.contains("component `client`"), "{msg}");
    // Spin's order (by interface): farewell is registered first, greeter collides.
    assert!(
        msg.contains(r#"dependency "shop:fixture/greeter@0.1.0""#),
        "{msg}"
    );
    assert!(
        msg.contains(r#"already registered by dependency "shop:fixture/farewell@0.1.0""#),
        "{msg}"
    );
}

#[test]
fn package_key_plugs_all_of_its_interfaces_from_one_instance() {
    let table = dependency_table(true, &["shop:fixture@0.1.0", ECHO]);
    assert_eq!(
        body(&table, "/grace"),
        "hello, grace\nhi\ngoodbye, grace (greeted 1)\necho: grace (greeted 0)"
    );
}

#[test]
fn unversioned_keys_match_any_version() {
    let table = dependency_table(true, &["shop:fixture", "shop:fixture-echo/echo"]);
    assert_eq!(
        body(&table, "/lin"),
        "hello, lin\nhi\ngoodbye, lin (greeted 1)\necho: lin (greeted 0)"
    );
}

#[test]
fn versions_must_match_exactly_as_in_spin() {
    // 0.1.1 is semver-compatible with the imported 0.1.0, but Spin compares
    // versions for equality.
    let msg = load_error(&dependency_table(true, &["shop:fixture@0.1.1", ECHO]));
    assert!(
        msg.contains(
            "dependency 'shop:fixture@0.1.1' doesn't match any imports of component 'client'"
        ),
        "{msg}"
    );
}

#[test]
fn package_key_does_not_match_a_package_with_a_longer_name() {
    // `shop:fixture` is a prefix of `shop:fixture-echo`, but not its package.
    let msg = load_error(&dependency_table(true, &["shop:fixture@0.1.0"]));
    assert!(msg.contains(ECHO), "{msg}");
    assert!(msg.contains("does not provide"), "{msg}");
}

#[test]
fn overlapping_keys_of_one_package_are_a_manifest_error() {
    let msg = load_error(&dependency_table(
        true,
        &["shop:fixture@0.1.0", "shop:fixture/greeter@0.1.0", ECHO],
    ));
    assert!(msg.contains("conflicts with dependency"), "{msg}");
    assert!(msg.contains("component `client`"), "{msg}");
}

#[test]
fn package_key_may_not_name_an_export() {
    let table = format!(
        "dependencies_inherit_configuration = true\n[component.client.dependencies]\n\
         \"shop:fixture@0.1.0\" = {{ path = {w:?}, export = \"shop:fixture/greeter@0.1.0\" }}\n\
         {ECHO:?} = {{ path = {w:?} }}\n",
        w = greeter_wasm()
    );
    let msg = load_error(&table);
    assert!(msg.contains("is not currently permitted"), "{msg}");
}

#[test]
fn interface_key_export_must_exist_and_fit_the_import() {
    let with_export = |export: &str| {
        format!(
            "dependencies_inherit_configuration = true\n[component.client.dependencies]\n\
             \"shop:fixture@0.1.0\" = {{ path = {w:?} }}\n\
             {ECHO:?} = {{ path = {w:?}, export = {export:?} }}\n",
            w = greeter_wasm()
        )
    };
    let msg = load_error(&with_export("shop:fixture-echo/missing@0.1.0"));
    assert!(
        msg.contains("dependency 'shop:fixture-echo/echo@0.1.0' doesn't export 'shop:fixture-echo/missing@0.1.0' to satisfy import 'shop:fixture-echo/echo@0.1.0'"),
        "{msg}"
    );
    let msg = load_error(&with_export("shop:fixture/greeter@0.1.0"));
    assert!(msg.contains("which is not compatible with import"), "{msg}");
}

#[test]
fn key_matching_no_import_fails_the_load() {
    let msg = load_error(&dependency_table(
        true,
        &["shop:fixture@0.1.0", ECHO, "shop:other/thing@0.1.0"],
    ));
    assert!(
        msg.contains(
            "dependency 'shop:other/thing@0.1.0' doesn't match any imports of component 'client'"
        ),
        "{msg}"
    );
}

#[test]
fn unprovided_import_fails_the_load_naming_it() {
    let dir = TempDir::new("compose");
    // No dependency table: nothing provides shop:fixture/greeter.
    let err = RunningHost::start(client_manifest(&dir, ""))
        .err()
        .expect("load must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("shop:fixture/"), "{msg}");
    assert!(msg.contains("component `client`"), "{msg}");
}
