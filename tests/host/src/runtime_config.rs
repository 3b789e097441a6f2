//! The runtime configuration file (`spin up --runtime-config-file`).
//!
//! Real Spin requires every non-`default` SQLite database and key-value
//! store label a component uses to be declared here; the test host enforces
//! the same rule so an app that works here does not fail on `spin up`. For
//! test isolation the configured `path` is *not* used: every store lives
//! under the host's state dir.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
struct RawRuntimeConfig {
    #[serde(default)]
    sqlite_database: BTreeMap<String, StoreConfig>,
    #[serde(default)]
    key_value_store: BTreeMap<String, StoreConfig>,
}

#[derive(Debug, Deserialize)]
struct StoreConfig {
    #[serde(rename = "type")]
    kind: String,
    #[allow(dead_code)]
    path: Option<String>,
}

/// Which store labels exist. `default` always does, as in Spin.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub sqlite_databases: BTreeSet<String>,
    pub key_value_stores: BTreeSet<String>,
}

impl RuntimeConfig {
    pub fn load(path: Option<&Path>) -> Result<RuntimeConfig> {
        let raw = match path {
            None => RawRuntimeConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading runtime config {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing runtime config {}", path.display()))?
            }
        };
        let labels =
            |section: &str, map: &BTreeMap<String, StoreConfig>| -> Result<BTreeSet<String>> {
                let mut labels = BTreeSet::from(["default".to_string()]);
                for (label, config) in map {
                    if config.kind != "spin" {
                        bail!(
                        "runtime config [{section}.{label}]: type `{}` is not supported by the \
                         test host (only `spin`, i.e. local SQLite)",
                        config.kind
                    );
                    }
                    labels.insert(label.clone());
                }
                Ok(labels)
            };
        Ok(RuntimeConfig {
            sqlite_databases: labels("sqlite_database", &raw.sqlite_database)?,
            key_value_stores: labels("key_value_store", &raw.key_value_store)?,
        })
    }
}
