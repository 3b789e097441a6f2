//! `fermyon:spin/key-value@2.0.0`, persisted in one SQLite file per store
//! label (`<state dir>/key_value/<label>.db`), so values survive across
//! requests and host restarts on the same state dir, as with `spin up`.
//!
//! `open` checks the component's `key_value_stores` grant first
//! (`access-denied`), then whether the label exists (`no-such-store`), in
//! Spin's order. Each open store has its own connection; calls run on the
//! blocking pool since SQLite may wait on another instance's lock.

use crate::bindings::fermyon::spin::key_value as kv;
use crate::state::HostState;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmtime::component::Resource;

/// The host side of a guest's `store` resource.
pub struct StoreHandle {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

pub fn store_path(state_dir: &Path, label: &str) -> PathBuf {
    state_dir.join("key_value").join(format!("{label}.db"))
}

fn open_store(path: PathBuf) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS spin_key_value (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
        [],
    )?;
    Ok(conn)
}

impl HostState {
    /// Runs `f` on the store's connection on the blocking pool.
    async fn with_store<T: Send + 'static>(
        &mut self,
        store: &Resource<StoreHandle>,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> wasmtime::Result<Result<T, kv::Error>> {
        let conn = self.table.get(store)?.conn.clone();
        let result = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poison| poison.into_inner());
            f(&conn)
        })
        .await?;
        Ok(result.map_err(|e| kv::Error::Other(e.to_string())))
    }
}

impl kv::Host for HostState {}

impl kv::HostStore for HostState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, kv::Error>> {
        if !self.component.key_value_stores.contains(&label) {
            return Ok(Err(kv::Error::AccessDenied));
        }
        if !self.app_stores.key_value_stores.contains(&label) {
            return Ok(Err(kv::Error::NoSuchStore));
        }
        let path = store_path(&self.app_stores.state_dir, &label);
        match tokio::task::spawn_blocking(move || open_store(path)).await? {
            Ok(conn) => Ok(Ok(self.table.push(StoreHandle {
                conn: Arc::new(Mutex::new(conn)),
            })?)),
            Err(e) => Ok(Err(kv::Error::Other(e.to_string()))),
        }
    }

    async fn get(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv::Error>> {
        self.with_store(&self_, move |conn| {
            use rusqlite::OptionalExtension;
            conn.query_row(
                "SELECT value FROM spin_key_value WHERE key = ?1",
                [key],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn set(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        self.with_store(&self_, move |conn| {
            conn.execute(
                "INSERT INTO spin_key_value (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                rusqlite::params![key, value],
            )
            .map(|_| ())
        })
        .await
    }

    async fn delete(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        self.with_store(&self_, move |conn| {
            conn.execute("DELETE FROM spin_key_value WHERE key = ?1", [key])
                .map(|_| ())
        })
        .await
    }

    async fn exists(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv::Error>> {
        self.with_store(&self_, move |conn| {
            conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM spin_key_value WHERE key = ?1)",
                [key],
                |row| row.get(0),
            )
        })
        .await
    }

    async fn get_keys(
        &mut self,
        self_: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, kv::Error>> {
        self.with_store(&self_, |conn| {
            let mut stmt = conn.prepare("SELECT key FROM spin_key_value ORDER BY key")?;
            let keys = stmt
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(keys)
        })
        .await
    }

    async fn drop(&mut self, rep: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}
