//! The runtime configuration file (`spin up --runtime-config-file`).
//!
//! Real Spin requires every non-`default` SQLite database and key-value
//! store label a component uses to be declared here; the test host enforces
//! the same rule so an app that works here does not fail on `spin up`.
//!
//! What the host can implement:
//!
//! * `[sqlite_database.X] type = "spin"` and `[key_value_store.X] type =
//!   "spin"`: local SQLite. For test isolation the configured `path` is
//!   *not* used: every such store lives under the host's state dir.
//! * `[key_value_store.X] type = "redis"` with `url = "redis://..."`: the
//!   store is on that Redis server (see `key_value_redis.rs`), as in Spin,
//!   whose Redis store requires `url` and refuses an invalid one at
//!   start-up. Tests point it at a throwaway `redis-server`.
//!
//! Any other type (`libsql`, `azure_cosmos`, `aws_dynamo`, ...) fails the
//! load with an error naming the section, rather than silently using
//! something else.

use crate::key_value_redis;
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
    /// `type = "redis"`: the server.
    url: Option<String>,
}

/// Which store labels exist. `default` always does, as in Spin.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub sqlite_databases: BTreeSet<String>,
    pub key_value_stores: BTreeSet<String>,
    /// The key-value labels on Redis, with their URLs (the others: SQLite).
    pub key_value_redis: BTreeMap<String, String>,
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
        let mut sqlite_databases = BTreeSet::from(["default".to_string()]);
        for (label, config) in &raw.sqlite_database {
            if config.kind != "spin" {
                bail!(
                    "runtime config [sqlite_database.{label}]: type `{}` is not supported by the \
                     test host (only `spin`, i.e. local SQLite)",
                    config.kind
                );
            }
            sqlite_databases.insert(label.clone());
        }
        let mut key_value_stores = BTreeSet::from(["default".to_string()]);
        let mut key_value_redis = BTreeMap::new();
        for (label, config) in &raw.key_value_store {
            match config.kind.as_str() {
                "spin" => {}
                "redis" => {
                    let Some(url) = &config.url else {
                        bail!(
                            "runtime config [key_value_store.{label}]: type `redis` needs `url` \
                             (e.g. url = \"redis://127.0.0.1:6379\")"
                        );
                    };
                    key_value_redis::check_url(url).map_err(|e| {
                        anyhow::anyhow!("runtime config [key_value_store.{label}]: {e}")
                    })?;
                    key_value_redis.insert(label.clone(), url.clone());
                }
                other => bail!(
                    "runtime config [key_value_store.{label}]: type `{other}` is not supported by \
                     the test host (only `spin`, i.e. local SQLite, and `redis` with `url`)"
                ),
            }
            key_value_stores.insert(label.clone());
        }
        Ok(RuntimeConfig {
            sqlite_databases,
            key_value_stores,
            key_value_redis,
        })
    }
}
