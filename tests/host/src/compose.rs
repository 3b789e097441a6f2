//! Component dependencies (`[component.x.dependencies]`), composed with
//! `wac-graph` at load time the way Spin does it.
//!
//! A dependency key names either an interface (`ns:pkg/iface@1.0.0`, which
//! satisfies the parent's import of that interface or a semver-compatible
//! one) or a whole package (`ns:pkg@1.0.0`, which satisfies every parent
//! import from that package). The dependency's matching export (or the one
//! named by `export = "..."`) is plugged in; everything neither side
//! satisfies becomes an import of the composed component, for the host.
//!
//! Spin runs a dependency with *no* grants unless the parent sets
//! `dependencies_inherit_configuration = true`, in which case it shares the
//! parent's. The test host cannot split grants inside one composed instance,
//! so without inheritance it refuses to load a dependency that imports any
//! Spin capability interface instead of silently granting it.

use anyhow::{anyhow, bail, Context, Result};
use wac_graph::types::{are_semver_compatible, Package};
use wac_graph::{CompositionGraph, EncodeOptions};

/// One resolved dependency of a component.
pub struct Dependency {
    /// The manifest key, e.g. `shop:platform/catalog@0.1.0`.
    pub key: String,
    /// Where the dependency was loaded from (for messages).
    pub origin: String,
    pub bytes: Vec<u8>,
    /// `export = "..."`: the dependency export to use, if not the key.
    pub export: Option<String>,
}

/// Interfaces through which a component exercises grants. A dependency
/// importing one of these needs `dependencies_inherit_configuration`.
fn is_capability_import(name: &str) -> bool {
    name.starts_with("fermyon:spin/")
        || name.starts_with("spin:")
        || name.starts_with("wasi:http/outgoing-handler")
        || name.starts_with("wasi:keyvalue/")
        || name.starts_with("wasi:config/")
}

/// Strips `@version` from an interface or package name.
fn unversioned(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// Returns the composed component's bytes.
pub fn compose(
    component_id: &str,
    parent: &[u8],
    dependencies: &[Dependency],
    inherit_configuration: bool,
) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let parent_pkg = Package::from_bytes(
        "shop-test-host:parent",
        None,
        parent.to_vec(),
        graph.types_mut(),
    )
    .with_context(|| format!("component `{component_id}`: reading its wasm for composition"))?;
    let parent_pkg = graph.register_package(parent_pkg)?;
    let parent_world = graph[parent_pkg].ty();
    let parent_imports: Vec<String> = graph.types()[parent_world]
        .imports
        .keys()
        .cloned()
        .collect();
    let parent_exports: Vec<String> = graph.types()[parent_world]
        .exports
        .keys()
        .cloned()
        .collect();
    let parent_instance = graph.instantiate(parent_pkg);

    for (index, dep) in dependencies.iter().enumerate() {
        let context = || {
            format!(
                "component `{component_id}` dependency {:?} ({})",
                dep.key, dep.origin
            )
        };
        let pkg = Package::from_bytes(
            &format!("shop-test-host:dependency{index}"),
            None,
            dep.bytes.clone(),
            graph.types_mut(),
        )
        .with_context(context)?;
        let pkg = graph.register_package(pkg).with_context(context)?;
        let world = graph[pkg].ty();
        let dep_imports: Vec<String> = graph.types()[world].imports.keys().cloned().collect();
        let dep_exports: Vec<String> = graph.types()[world].exports.keys().cloned().collect();

        if !inherit_configuration {
            let capabilities: Vec<&String> = dep_imports
                .iter()
                .filter(|name| is_capability_import(name))
                .collect();
            if !capabilities.is_empty() {
                bail!(
                    "{}: the dependency imports Spin host interfaces {:?}, but Spin gives \
                     dependencies no grants unless the parent sets \
                     `dependencies_inherit_configuration = true`",
                    context(),
                    capabilities
                );
            }
        }

        // Which parent imports does this key satisfy?
        let is_interface = dep.key.contains('/');
        let targets: Vec<&String> = if is_interface {
            parent_imports
                .iter()
                .filter(|import| *import == &dep.key || are_semver_compatible(import, &dep.key))
                .collect()
        } else {
            let package = unversioned(&dep.key);
            parent_imports
                .iter()
                .filter(|import| unversioned(import).split('/').next() == Some(package))
                .collect()
        };
        if targets.is_empty() {
            bail!(
                "{}: the component has no import matching this dependency (its imports: {:?})",
                context(),
                parent_imports
            );
        }

        let instance = graph.instantiate(pkg);
        for target in targets {
            let wanted = match (&dep.export, is_interface) {
                (Some(export), true) => export.clone(),
                _ => target.clone(),
            };
            let export = dep_exports
                .iter()
                .find(|e| **e == wanted)
                .or_else(|| {
                    dep_exports
                        .iter()
                        .find(|e| are_semver_compatible(e, &wanted))
                })
                .ok_or_else(|| {
                    anyhow!(
                        "{}: the dependency does not export `{wanted}` (its exports: {:?})",
                        context(),
                        dep_exports
                    )
                })?;
            let alias = graph
                .alias_instance_export(instance, export)
                .with_context(context)?;
            graph
                .set_instantiation_argument(parent_instance, target, alias)
                .with_context(|| format!("{}: plugging `{export}` into `{target}`", context()))?;
        }
    }

    for name in parent_exports {
        let alias = graph.alias_instance_export(parent_instance, &name)?;
        graph.export(alias, &name)?;
    }
    graph
        .encode(EncodeOptions::default())
        .with_context(|| format!("component `{component_id}`: encoding the composed component"))
}
