//! Per-request store data and the per-component configuration it points to.
//!
//! Every request gets a fresh `Store<HostState>` (and thus a fresh guest
//! instance); the grants it is checked against live in an `Arc` shared by
//! all requests to that component.

use crate::outbound::OutboundHooks;
use crate::variables::ComponentVariables;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What one component is allowed to use, resolved at load time.
#[derive(Debug)]
pub struct ComponentConfig {
    pub id: String,
    pub key_value_stores: BTreeSet<String>,
    pub sqlite_databases: BTreeSet<String>,
    pub variables: ComponentVariables,
    pub environment: Vec<(String, String)>,
    /// Staged, read-only directory mounted at the guest's `/`.
    pub files_dir: Option<PathBuf>,
}

/// Store labels that exist for the whole app, and where their files live.
#[derive(Debug)]
pub struct AppStores {
    pub state_dir: PathBuf,
    pub sqlite_databases: BTreeSet<String>,
    pub key_value_stores: BTreeSet<String>,
    /// The key-value labels on Redis (`type = "redis"`), each with its
    /// app-wide connection; every other label is a SQLite file.
    pub key_value_redis: crate::key_value_redis::RedisStores,
    /// Postgres connection pools, one per connection string, kept across
    /// requests (as Spin keeps them for the app's lifetime).
    pub postgres: crate::postgres::PgPools,
}

/// The `T` of every `Store<T>`.
pub struct HostState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub hooks: OutboundHooks,
    pub component: Arc<ComponentConfig>,
    pub app_stores: Arc<AppStores>,
    /// Open `fermyon:spin/redis` connections of this instance.
    pub redis_connections: usize,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
