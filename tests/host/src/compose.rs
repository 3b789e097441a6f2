//! Component dependencies (`[component.x.dependencies]`), composed with
//! `wac-graph` at load time following Spin's algorithm
//! (`spinframework/spin`, `crates/compose/src/lib.rs`):
//!
//! 1. The component is registered in the graph under its component id.
//! 2. Dependencies are visited in Spin's order (`BTreeMap<DependencyName>`:
//!    plain names first, then by package, version, interface). Each key is
//!    matched against the component's imports ([`matches_import`]): same
//!    package; same interface if the key names one; *exactly* the same
//!    version if the key has one (no semver-compatible matching). A key that
//!    matches no import fails the load.
//! 3. Each dependency is registered under its **package name** (`ns:pkg` for
//!    `"ns:pkg/iface@1.0.0"` and `"ns:pkg@1.0.0"`, the name itself for a plain
//!    key), version `None`, and instantiated once. So two keys of one WIT
//!    package collide with wac-graph's "package `ns:pkg` has already been
//!    registered in the graph", exactly as `spin up` fails.
//! 4. An import matched by more than one key is a conflict.
//! 5. Each matched import is plugged with the dependency's export of the
//!    same name (or the one named by `export = "..."`), looked up exactly and
//!    checked to be a subtype of the import. A package key therefore plugs
//!    every import of that package from one instance, and fails if the
//!    dependency does not export one of them.
//! 6. Everything left unplugged, including all imports of the dependencies
//!    themselves, becomes an import of the composed component, for the host.
//!    The component's exports are re-exported.
//!
//! The manifest-level checks Spin makes on dependency keys (parseable names,
//! no `export` on a package key, keys of one package must be disjoint) are in
//! [`validate_dependencies`], called when the manifest is loaded.
//!
//! Spin runs a dependency with *no* grants unless the parent sets
//! `dependencies_inherit_configuration = true` (it plugs a deny-all adapter
//! in). The test host cannot split grants inside one composed instance, so
//! without inheritance it refuses to load a dependency that imports any
//! Spin capability interface instead of silently granting it. That check
//! runs last, so every error Spin would report is reported first.

use anyhow::{anyhow, bail, Context, Result};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use wac_graph::types::{Package, SubtypeChecker, WorldId};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId};

/// One resolved dependency of a component.
pub struct Dependency {
    /// The manifest key, e.g. `shop:catalog/inventory@0.1.0`.
    pub key: String,
    /// Where the dependency was loaded from (for messages).
    pub origin: String,
    pub bytes: Vec<u8>,
    /// `export = "..."`: the dependency export to use, if not the import's name.
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

// ---------------------------------------------------------------------------
// Names: Spin's `DependencyName` (spin-serde) and `ImportName` (spin-compose).
// ---------------------------------------------------------------------------

/// A semantic version, compared the way `semver::Version` is: equal only if
/// every part, including pre-release and build metadata, is equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
    build: String,
}

impl Version {
    fn parse(s: &str) -> Result<Version> {
        let invalid = || anyhow!("invalid semantic version `{s}`");
        let (rest, build) = match s.split_once('+') {
            Some((rest, build)) => (rest, build),
            None => (s, ""),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, pre),
            None => (rest, ""),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        if numbers.len() != 3 {
            return Err(invalid());
        }
        let number = |n: &str| -> Result<u64> {
            if n.is_empty()
                || !n.bytes().all(|b| b.is_ascii_digit())
                || (n.len() > 1 && n.starts_with('0'))
            {
                return Err(invalid());
            }
            n.parse().map_err(|_| invalid())
        };
        let identifiers_ok = |part: &str, numeric_rule: bool| {
            part.split('.').all(|id| {
                !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !(numeric_rule
                        && id.len() > 1
                        && id.starts_with('0')
                        && id.bytes().all(|b| b.is_ascii_digit()))
            })
        };
        if (rest.contains('-') && !identifiers_ok(pre, true))
            || (s.contains('+') && !identifiers_ok(build, false))
        {
            return Err(invalid());
        }
        Ok(Version {
            major: number(numbers[0])?,
            minor: number(numbers[1])?,
            patch: number(numbers[2])?,
            pre: pre.to_string(),
            build: build.to_string(),
        })
    }

    /// Spin's `normalize_compatible_version`: the version with everything a
    /// semver-compatible release may change zeroed.
    fn compatibility_class(&self) -> Version {
        let mut v = self.clone();
        v.build.clear();
        if !v.pre.is_empty() {
            return v;
        }
        if v.major > 0 {
            v.minor = 0;
            v.patch = 0;
        } else if v.minor > 0 {
            v.patch = 0;
        }
        v
    }

    /// Approximately semver precedence; only used to order dependencies.
    fn sort_key(&self) -> (u64, u64, u64, bool, &str, &str) {
        (
            self.major,
            self.minor,
            self.patch,
            self.pre.is_empty(),
            &self.pre,
            &self.build,
        )
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

/// A kebab-case identifier (`foo`, `foo-bar2`; words all lower or all upper case).
fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|word| {
            let mut chars = word.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && word.chars().all(|c| c.is_ascii_alphanumeric())
                && (word.chars().all(|c| !c.is_ascii_uppercase())
                    || word.chars().all(|c| !c.is_ascii_lowercase()))
        })
}

/// A dependency key, parsed as Spin parses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DependencyName {
    /// `foo-bar`: matches the plain import `foo-bar` only.
    Plain(String),
    /// `ns:pkg`, `ns:pkg@1.0.0`, `ns:pkg/iface`, `ns:pkg/iface@1.0.0`.
    Package {
        /// `ns:pkg`
        package: String,
        version: Option<Version>,
        interface: Option<String>,
    },
}

impl DependencyName {
    pub(crate) fn parse(key: &str) -> Result<DependencyName> {
        let context = || format!("invalid dependency name {key:?}");
        if !key.contains([':', '/']) {
            if !is_kebab(key) {
                return Err(anyhow!("`{key}` is not a kebab-case name")).with_context(context);
            }
            return Ok(DependencyName::Plain(key.to_string()));
        }
        let (name, version) = match key.split_once('@') {
            Some((name, version)) => (name, Some(Version::parse(version).with_context(context)?)),
            None => (key, None),
        };
        let (package, interface) = match name.split_once('/') {
            Some((package, interface)) => {
                if !is_kebab(interface) {
                    return Err(anyhow!("interface `{interface}` is not a kebab-case name"))
                        .with_context(context);
                }
                (package, Some(interface.to_string()))
            }
            None => (name, None),
        };
        let valid_package = package
            .split_once(':')
            .is_some_and(|(ns, pkg)| is_kebab(ns) && is_kebab(pkg));
        if !valid_package {
            return Err(anyhow!(
                "`{package}` is not a package name `namespace:name`"
            ))
            .with_context(context);
        }
        Ok(DependencyName::Package {
            package: package.to_string(),
            version,
            interface,
        })
    }

    /// The name Spin registers the dependency under in the wac graph.
    fn package_name(&self) -> &str {
        match self {
            DependencyName::Plain(name) => name,
            DependencyName::Package { package, .. } => package,
        }
    }

    fn is_package_key(&self) -> bool {
        matches!(
            self,
            DependencyName::Package {
                interface: None,
                ..
            }
        )
    }

    /// Spin's iteration order (`BTreeMap<DependencyName, _>`, derived `Ord`:
    /// plain before package; then package, version, interface).
    fn spin_order(&self, other: &DependencyName) -> Ordering {
        use DependencyName::*;
        match (self, other) {
            (Plain(a), Plain(b)) => a.cmp(b),
            (Plain(_), Package { .. }) => Ordering::Less,
            (Package { .. }, Plain(_)) => Ordering::Greater,
            (
                Package {
                    package: pa,
                    version: va,
                    interface: ia,
                },
                Package {
                    package: pb,
                    version: vb,
                    interface: ib,
                },
            ) => {
                let (na, nb) = (pa.split_once(':'), pb.split_once(':'));
                na.cmp(&nb)
                    .then_with(|| {
                        va.as_ref()
                            .map(Version::sort_key)
                            .cmp(&vb.as_ref().map(Version::sort_key))
                    })
                    .then_with(|| ia.cmp(ib))
            }
        }
    }
}

/// An import name of the component, parsed as Spin's `ImportName`.
enum ImportName {
    Plain(String),
    Package {
        package: String,
        interface: String,
        version: Option<Version>,
    },
}

impl ImportName {
    fn parse(name: &str) -> Result<ImportName> {
        if !name.contains([':', '/']) {
            return Ok(ImportName::Plain(name.to_string()));
        }
        let (package, rest) = name
            .split_once('/')
            .ok_or_else(|| anyhow!("invalid import name: {name}"))?;
        let (interface, version) = match rest.split_once('@') {
            Some((interface, version)) => (
                interface,
                Some(
                    Version::parse(version)
                        .with_context(|| format!("invalid version in import name: {name}"))?,
                ),
            ),
            None => (rest, None),
        };
        Ok(ImportName::Package {
            package: package.to_string(),
            interface: interface.to_string(),
            version,
        })
    }
}

/// Spin's `matches_import`: same package, same interface if the key names
/// one, the same version (exactly) if the key has one.
fn matches_import(dependency: &DependencyName, import: &str) -> Result<bool> {
    Ok(match (dependency, ImportName::parse(import)?) {
        (DependencyName::Plain(dep), ImportName::Plain(import)) => *dep == import,
        (
            DependencyName::Package {
                package,
                version,
                interface,
            },
            ImportName::Package {
                package: import_package,
                interface: import_interface,
                version: import_version,
            },
        ) => {
            *package == import_package
                && interface.as_ref().is_none_or(|i| *i == import_interface)
                && version
                    .as_ref()
                    .is_none_or(|v| import_version.as_ref() == Some(v))
        }
        _ => false,
    })
}

/// The checks `spin_manifest` makes on `[component.<id>.dependencies]`
/// when the manifest is loaded: every key parses; a package key has no
/// `export`; two keys of the same package are disjoint (different
/// interfaces, or semver-incompatible versions).
pub(crate) fn validate_dependencies<'a>(
    component_id: &str,
    dependencies: impl IntoIterator<Item = (&'a String, Option<&'a String>)>,
) -> Result<()> {
    let mut names = Vec::new();
    for (key, export) in dependencies {
        let name = DependencyName::parse(key)
            .with_context(|| format!("component `{component_id}`: dependencies"))?;
        if name.is_package_key() && export.is_some() {
            bail!(
                "component `{component_id}`: using an export to satisfy the package dependency \
                 {key:?} is not currently permitted (Spin allows `export` only on interface keys)"
            );
        }
        names.push((key, name));
    }
    for (i, (this_key, this)) in names.iter().enumerate() {
        for (other_key, other) in &names[i + 1..] {
            let (
                DependencyName::Package {
                    package: this_package,
                    version: this_version,
                    interface: this_interface,
                },
                DependencyName::Package {
                    package: other_package,
                    version: other_version,
                    interface: other_interface,
                },
            ) = (this, other)
            else {
                continue;
            };
            if this_package != other_package {
                continue;
            }
            if let (Some(a), Some(b)) = (this_version, other_version) {
                if a.compatibility_class() != b.compatibility_class() {
                    continue;
                }
            }
            if let (Some(a), Some(b)) = (this_interface, other_interface) {
                if a != b {
                    continue;
                }
            }
            bail!(
                "component `{component_id}`: dependency {this_key:?} conflicts with dependency \
                 {other_key:?} (Spin requires keys of one package to name different interfaces \
                 or semver-incompatible versions)"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Composition.
// ---------------------------------------------------------------------------

struct Registered<'a> {
    dep: &'a Dependency,
    world: WorldId,
    instance: NodeId,
}

impl Registered<'_> {
    fn describe(&self) -> String {
        format!("dependency {:?} ({})", self.dep.key, self.dep.origin)
    }
}

/// Returns the composed component's bytes. `dependencies` must be non-empty
/// (Spin returns the component untouched when it has none).
pub fn compose(
    component_id: &str,
    parent: &[u8],
    dependencies: &[Dependency],
    inherit_configuration: bool,
) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    // Which manifest entry registered each package name (for messages).
    let mut registered_by: HashMap<String, String> = HashMap::new();

    // 1. The component itself, under its id.
    let parent_pkg = Package::from_bytes(component_id, None, parent.to_vec(), graph.types_mut())
        .with_context(|| format!("component `{component_id}`: reading its wasm for composition"))?;
    let parent_world = parent_pkg.ty();
    let parent_pkg = graph
        .register_package(parent_pkg)
        .with_context(|| format!("component `{component_id}`: registering it for composition"))?;
    let parent_instance = graph.instantiate(parent_pkg);
    registered_by.insert(
        component_id.to_string(),
        format!("the component `{component_id}` itself"),
    );
    let imports: Vec<String> = graph.types()[parent_world]
        .imports
        .keys()
        .cloned()
        .collect();

    // 2. + 3. Match, then register each dependency under its package name.
    let mut parsed = dependencies
        .iter()
        .map(|dep| {
            DependencyName::parse(&dep.key)
                .map(|name| (name, dep))
                .with_context(|| format!("component `{component_id}`"))
        })
        .collect::<Result<Vec<_>>>()?;
    parsed.sort_by(|(a, _), (b, _)| a.spin_order(b));

    let mut registered: Vec<Registered> = Vec::new();
    let mut mappings: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (name, dep) in parsed {
        let mut matched = Vec::new();
        for import in &imports {
            if matches_import(&name, import).with_context(|| {
                format!(
                    "component `{component_id}`: matching dependency {:?}",
                    dep.key
                )
            })? {
                matched.push(import.clone());
            }
        }
        if matched.is_empty() {
            bail!(
                "dependency '{}' doesn't match any imports of component '{component_id}' \
                 (Spin matches the package, the interface if the key names one, and exactly the \
                 version if the key has one; the component imports {imports:?})",
                dep.key
            );
        }

        let package_name = name.package_name().to_string();
        let context = || {
            let earlier = registered_by
                .get(&package_name)
                .map(|by| format!(", already registered by {by}"))
                .unwrap_or_default();
            format!(
                "component `{component_id}`: dependency {:?} ({}) cannot be registered: Spin \
                 registers every dependency under its package name `{package_name}`{earlier}; \
                 satisfy several interfaces of one package with a single package key \
                 (e.g. \"{package_name}@<version>\") instead of one key per interface",
                dep.key, dep.origin
            )
        };
        let pkg = Package::from_bytes(&package_name, None, dep.bytes.clone(), graph.types_mut())
            .with_context(|| {
                format!(
                    "component `{component_id}` dependency {:?} ({}): reading its wasm",
                    dep.key, dep.origin
                )
            })?;
        let world = pkg.ty();
        let pkg = graph
            .register_package(pkg)
            .map_err(anyhow::Error::from)
            .with_context(context)?;
        let instance = graph.instantiate(pkg);
        registered_by.insert(package_name.clone(), format!("dependency {:?}", dep.key));

        let index = registered.len();
        registered.push(Registered {
            dep,
            world,
            instance,
        });
        for import in matched {
            mappings.entry(import).or_default().push(index);
        }
    }

    // 4. An import may be satisfied by only one dependency.
    let conflicts: Vec<String> = mappings
        .iter()
        .filter(|(_, users)| users.len() > 1)
        .map(|(import, users)| {
            let keys: Vec<&str> = users
                .iter()
                .map(|&i| registered[i].dep.key.as_str())
                .collect();
            format!(
                "import '{import}' satisfied by dependencies: '{}'",
                keys.join(", ")
            )
        })
        .collect();
    if !conflicts.is_empty() {
        bail!(
            "component '{component_id}' has dependency conflicts: {}",
            conflicts.join("; ")
        );
    }

    // 5. Plug each matched import with the export of the same name (or the
    // `export` named in the manifest), checking its type.
    let mut cache = HashSet::new();
    let mut arguments = Vec::new();
    for (import, users) in &mappings {
        let reg = &registered[users[0]];
        let export = reg.dep.export.clone().unwrap_or_else(|| import.clone());
        let Some(&export_ty) = graph.types()[reg.world].exports.get(&export) else {
            let exports: Vec<&String> = graph.types()[reg.world].exports.keys().collect();
            bail!(
                "component `{component_id}`: dependency '{}' doesn't export '{export}' to satisfy \
                 import '{import}' (its exports: {exports:?}; Spin looks the name up exactly)",
                reg.dep.key
            );
        };
        let import_ty = graph.types()[parent_world].imports[import];
        SubtypeChecker::new(&mut cache)
            .is_subtype(export_ty, graph.types(), import_ty, graph.types())
            .with_context(|| {
                format!(
                    "component `{component_id}`: dependency '{}' exports '{export}' which is not \
                     compatible with import '{import}'",
                    reg.dep.key
                )
            })?;
        let alias = graph
            .alias_instance_export(reg.instance, &export)
            .with_context(|| format!("component `{component_id}`: {}", reg.describe()))?;
        arguments.push((import.clone(), alias, reg.describe()));
    }
    for (import, alias, describe) in arguments {
        graph
            .set_instantiation_argument(parent_instance, &import, alias)
            .with_context(|| {
                format!("component `{component_id}`: {describe}: plugging `{import}`")
            })?;
    }

    // The test host's stand-in for Spin's deny-all adapter (see module docs).
    if !inherit_configuration {
        for reg in &registered {
            let capabilities: Vec<&String> = graph.types()[reg.world]
                .imports
                .keys()
                .filter(|name| is_capability_import(name))
                .collect();
            if !capabilities.is_empty() {
                bail!(
                    "component `{component_id}` {}: the dependency imports Spin host interfaces \
                     {capabilities:?}, but Spin gives dependencies no grants unless the parent \
                     sets `dependencies_inherit_configuration = true`",
                    reg.describe()
                );
            }
        }
    }
    // 6. Re-export the component's exports; the rest becomes imports.
    let exports: Vec<String> = graph.types()[parent_world]
        .exports
        .keys()
        .cloned()
        .collect();
    for name in exports {
        let alias = graph.alias_instance_export(parent_instance, &name)?;
        graph.export(alias, &name)?;
    }
    graph
        .encode(EncodeOptions::default())
        .with_context(|| format!("component `{component_id}`: encoding the composed component"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> DependencyName {
        DependencyName::parse(s).unwrap()
    }

    // The cases of Spin's own `test_matches_import`.
    #[test]
    fn matches_imports_like_spin() {
        for (dep, imports) in [
            ("foo:bar/baz@0.1.0", vec!["foo:bar/baz@0.1.0"]),
            ("foo:bar/baz", vec!["foo:bar/baz@0.1.0", "foo:bar/baz"]),
            ("foo:bar", vec!["foo:bar/baz@0.1.0", "foo:bar/baz"]),
            ("foo:bar@0.1.0", vec!["foo:bar/baz@0.1.0"]),
            ("foo-bar", vec!["foo-bar"]),
        ] {
            for import in imports {
                assert!(
                    matches_import(&name(dep), import).unwrap(),
                    "{dep} {import}"
                );
            }
        }
        for (dep, imports) in [
            (
                "foo:bar/baz@0.1.0",
                vec!["foo:bar/baz", "foo:bar/baz@0.1.1"],
            ),
            ("foo:bar/baz", vec!["foo:bar/bub", "foo:bar/bub@0.1.0"]),
            ("foo:bar", vec!["foo:bub/bib", "foo:bar-baz/bib"]),
            ("foo:bar@0.1.0", vec!["foo:bar/baz", "foo:bar/baz@0.1.1"]),
            ("foo:bar/baz", vec!["foo:bar/baz-bub", "foo-bar"]),
        ] {
            for import in imports {
                assert!(
                    !matches_import(&name(dep), import).unwrap(),
                    "{dep} {import}"
                );
            }
        }
    }

    #[test]
    fn registers_under_the_package_name() {
        assert_eq!(
            name("shop:catalog/inventory@0.1.0").package_name(),
            "shop:catalog"
        );
        assert_eq!(name("shop:catalog@0.1.0").package_name(), "shop:catalog");
        assert_eq!(name("shop:catalog").package_name(), "shop:catalog");
        assert_eq!(name("plain-dep").package_name(), "plain-dep");
    }

    #[test]
    fn rejects_malformed_keys() {
        for key in [
            "shop:catalog@1.0",
            "shop/x",
            "shop:Cat_alog",
            "a:b/c@01.0.0",
            "Not Kebab",
        ] {
            assert!(DependencyName::parse(key).is_err(), "{key}");
        }
        assert_eq!(
            Version::parse("1.2.3-rc.1+b5").unwrap().to_string(),
            "1.2.3-rc.1+b5"
        );
    }

    #[test]
    fn manifest_checks_like_spin() {
        let check = |keys: &[(&str, Option<&str>)]| {
            let owned: Vec<(String, Option<String>)> = keys
                .iter()
                .map(|(k, e)| (k.to_string(), e.map(str::to_string)))
                .collect();
            validate_dependencies("c", owned.iter().map(|(k, e)| (k, e.as_ref())))
        };
        // Disjoint: different interfaces, or incompatible versions.
        check(&[("a:b/x@0.1.0", None), ("a:b/y@0.1.0", None)]).unwrap();
        check(&[("a:b@0.1.0", None), ("a:b@0.2.0", None)]).unwrap();
        check(&[("a:b@1.0.0", None), ("a:b@2.0.0", None)]).unwrap();
        // Overlapping.
        assert!(check(&[("a:b@0.1.0", None), ("a:b/x@0.1.0", None)]).is_err());
        assert!(check(&[("a:b/x@1.0.0", None), ("a:b/x@1.2.0", None)]).is_err());
        assert!(check(&[("a:b/x", None), ("a:b/x@0.1.0", None)]).is_err());
        // `export` only on interface keys.
        check(&[("a:b/x@0.1.0", Some("a:b/y@0.1.0"))]).unwrap();
        assert!(check(&[("a:b@0.1.0", Some("a:b/y@0.1.0"))]).is_err());
    }

    #[test]
    fn orders_dependencies_like_spin() {
        let mut names = [
            name("shop:catalog/inventory@0.1.0"),
            name("shop:cart/cart@0.1.0"),
            name("plain"),
            name("shop:catalog/catalog@0.1.0"),
        ];
        names.sort_by(|a, b| a.spin_order(b));
        let package_names: Vec<String> = names
            .iter()
            .map(|n| match n {
                DependencyName::Plain(p) => p.clone(),
                DependencyName::Package { interface, .. } => interface.clone().unwrap(),
            })
            .collect();
        assert_eq!(package_names, ["plain", "cart", "catalog", "inventory"]);
    }
}
