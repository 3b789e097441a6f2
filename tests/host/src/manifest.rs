//! The subset of the Spin application manifest (`spin.toml`, manifest
//! version 2) that the test host understands.
//!
//! Fields the host does not act on (`build`, `description`, `watch`, ...)
//! are accepted and ignored, because real manifests carry them; anything the
//! host would have to *interpret* but cannot (inline components, registry
//! sources, non-path dependencies) is rejected with an error rather than
//! silently skipped, so a test never runs against a half-loaded app.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed `spin.toml`, with the directory it was read from.
#[derive(Debug)]
pub struct Manifest {
    /// Directory containing the manifest; relative paths resolve against it.
    pub dir: PathBuf,
    pub raw: RawManifest,
}

#[derive(Debug, Deserialize)]
pub struct RawManifest {
    pub spin_manifest_version: toml::Value,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDef>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDef>,
}

/// `[variables] name = { default = "..." }` or `{ required = true, secret = true }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDef {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// Accepted for compatibility; Spin only uses it to redact values in
    /// its own logs, which this host does not write.
    #[serde(default)]
    #[allow(dead_code)]
    pub secret: bool,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

#[derive(Debug, Deserialize)]
pub struct HttpTrigger {
    pub route: RouteSpec,
    pub component: toml::Value,
}

/// `route = "/path/..."` or `route = { private = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteSpec {
    Path(String),
    Private { private: bool },
}

#[derive(Debug, Deserialize)]
pub struct ComponentDef {
    pub source: toml::Value,
    #[serde(default)]
    pub files: Vec<FileMount>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub dependencies: BTreeMap<String, DependencySpec>,
    #[serde(default)]
    pub dependencies_inherit_configuration: bool,
}

/// `files = ["dir/*.txt", { source = "static", destination = "/" }]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileMount {
    Pattern(String),
    Placement { source: String, destination: String },
}

/// `"pkg:name/iface@1.0.0" = { path = "dep.wasm" }` (optionally `export = "..."`).
#[derive(Debug, Clone, Deserialize)]
pub struct DependencySpec {
    pub path: Option<String>,
    pub export: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let raw: RawManifest = toml::from_str(&text)
            .with_context(|| format!("parsing manifest {}", path.display()))?;
        if raw.spin_manifest_version.as_integer() != Some(2)
            && raw.spin_manifest_version.as_str() != Some("2")
        {
            bail!(
                "{}: only `spin_manifest_version = 2` is supported, found {}",
                path.display(),
                raw.spin_manifest_version
            );
        }
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let manifest = Manifest { dir, raw };
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<()> {
        for (id, component) in &self.raw.component {
            validate_component_id(id)?;
            for dep in component.dependencies.values() {
                if dep.path.is_none() || !dep.other.is_empty() {
                    bail!(
                        "component `{id}`: only `{{ path = \"...\" }}` dependencies are supported \
                         by the test host (got {:?})",
                        dep
                    );
                }
            }
            crate::compose::validate_dependencies(
                id,
                component
                    .dependencies
                    .iter()
                    .map(|(key, dep)| (key, dep.export.as_ref())),
            )?;
        }
        for trigger in &self.raw.trigger.http {
            let id = trigger.component_id()?;
            if !self.raw.component.contains_key(id) {
                bail!("[[trigger.http]] refers to unknown component `{id}`");
            }
        }
        Ok(())
    }

    /// Resolves a manifest-relative path.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// The `.wasm` file of a component (`source = "path"` only).
    pub fn source_path(&self, id: &str) -> Result<PathBuf> {
        let component = &self.raw.component[id];
        match &component.source {
            toml::Value::String(path) => Ok(self.path(path)),
            other => bail!(
                "component `{id}`: only a local file `source = \"...\"` is supported by the \
                 test host, got {other}"
            ),
        }
    }
}

impl HttpTrigger {
    pub fn component_id(&self) -> Result<&str> {
        match &self.component {
            toml::Value::String(id) => Ok(id),
            _ => bail!("inline `component = {{ ... }}` tables in triggers are not supported by the test host"),
        }
    }
}

/// Spin component ids: lowercase words of letters and digits joined by `-`
/// or `_` (the id also becomes the `<id>.spin.internal` host name).
fn validate_component_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("invalid component id `{id}`: use lowercase letters, digits, `-` and `_`, starting with a letter");
    }
    Ok(())
}
