//! Key-value stores, persisted in one SQLite file per store label
//! (`<state dir>/key_value/<label>.db`), so values survive across requests
//! and host restarts on the same state dir, as with `spin up`.
//!
//! Two guest interfaces share the same stores and data, as in Spin 3.x:
//! `fermyon:spin/key-value@2.0.0` (here) and
//! `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` (`wasi_keyvalue.rs`),
//! so a value written through one is read through the other. This module
//! holds the storage operations both use.
//!
//! `open` checks the component's `key_value_stores` grant first
//! (`access-denied`), then whether the label exists (`no-such-store`), in
//! Spin's order. Each open store has its own connection (rollback journal,
//! rusqlite's default 5 s busy timeout); calls run on the blocking pool since
//! SQLite may wait on another instance's lock. Operations that must be atomic
//! across instances (increment, compare-and-swap) are one conditional SQL
//! statement or an `IMMEDIATE` transaction, so they hold across connections
//! and processes on the same file, not just within this host.

use crate::bindings::fermyon::spin::key_value as kv;
use crate::state::HostState;
use rusqlite::OptionalExtension;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmtime::component::Resource;

pub type SharedConnection = Arc<Mutex<rusqlite::Connection>>;

/// The host side of a guest's `store` (fermyon) or `bucket` (wasi) resource.
pub struct StoreHandle {
    pub(crate) conn: SharedConnection,
}

/// The host side of a guest's `wasi:keyvalue/atomics.cas` resource: the key
/// and the value the guest's swap is conditional on (`None`: key missing).
pub struct CasHandle {
    pub(crate) conn: SharedConnection,
    pub(crate) key: String,
    pub(crate) snapshot: Option<Vec<u8>>,
}

/// Why `open` failed; both interfaces have these variants.
pub(crate) enum OpenError {
    AccessDenied,
    NoSuchStore,
    Other(String),
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

/// Runs `f` on `conn` on the blocking pool.
pub(crate) async fn on_connection<T: Send + 'static>(
    conn: SharedConnection,
    f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
) -> wasmtime::Result<rusqlite::Result<T>> {
    Ok(tokio::task::spawn_blocking(move || {
        let conn = conn.lock().unwrap_or_else(|poison| poison.into_inner());
        f(&conn)
    })
    .await?)
}

// The storage operations, shared by both interfaces.

pub(crate) fn get(conn: &rusqlite::Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT value FROM spin_key_value WHERE key = ?1",
        [key],
        |row| row.get(0),
    )
    .optional()
}

pub(crate) fn set(conn: &rusqlite::Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO spin_key_value (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        rusqlite::params![key, value],
    )
    .map(|_| ())
}

pub(crate) fn delete(conn: &rusqlite::Connection, key: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM spin_key_value WHERE key = ?1", [key])
        .map(|_| ())
}

pub(crate) fn exists(conn: &rusqlite::Connection, key: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM spin_key_value WHERE key = ?1)",
        [key],
        |row| row.get(0),
    )
}

pub(crate) fn keys(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT key FROM spin_key_value ORDER BY key")?;
    let keys = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(keys)
}

/// Runs `f` inside a `BEGIN IMMEDIATE` transaction: the write lock is taken
/// up front (waiting out the busy timeout), so a read-then-write inside `f`
/// cannot interleave with another connection's write. Commits if `f` returns
/// `Ok(Ok(_))`, rolls back otherwise.
pub(crate) fn immediate<T, E>(
    conn: &rusqlite::Connection,
    f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<Result<T, E>>,
) -> rusqlite::Result<Result<T, E>> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let outcome = f(&tx)?;
    if outcome.is_ok() {
        tx.commit()?;
    }
    Ok(outcome)
}

/// Adds `delta` to the number at `key` (missing: 0) and returns the sum.
///
/// Stored as Spin's SQLite store does: the `i64` as 8 little-endian bytes
/// (`i64::to_le_bytes`). A value of another length is not a counter: Spin
/// panics on it, this host returns an error (`Err(message)`), as it does on
/// overflow.
pub(crate) fn increment(
    conn: &rusqlite::Connection,
    key: &str,
    delta: i64,
) -> rusqlite::Result<Result<i64, String>> {
    immediate(conn, |tx| {
        let current = match get(tx, key)? {
            None => 0,
            Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                Ok(bytes) => i64::from_le_bytes(bytes),
                Err(_) => return Ok(Err(format!(
                    "increment: the value at {key:?} is {} bytes, not an 8-byte little-endian i64",
                    bytes.len()
                ))),
            },
        };
        let Some(new) = current.checked_add(delta) else {
            return Ok(Err(format!("increment: {current} + {delta} overflows i64")));
        };
        set(tx, key, &new.to_le_bytes())?;
        Ok(Ok(new))
    })
}

/// Writes `value` at `key` only if the key still holds `expected` (still
/// missing, for `None`), as ONE statement, so the check and the write are
/// atomic across connections. Returns whether it wrote.
pub(crate) fn compare_and_swap(
    conn: &rusqlite::Connection,
    key: &str,
    expected: Option<&[u8]>,
    value: &[u8],
) -> rusqlite::Result<bool> {
    let changed = match expected {
        Some(expected) => conn.execute(
            "UPDATE spin_key_value SET value = ?3 WHERE key = ?1 AND value = ?2",
            rusqlite::params![key, expected, value],
        )?,
        None => conn.execute(
            "INSERT INTO spin_key_value (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO NOTHING",
            rusqlite::params![key, value],
        )?,
    };
    Ok(changed == 1)
}

impl HostState {
    /// Opens the store `label` for this component, checking its grant.
    pub(crate) async fn open_key_value(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<StoreHandle, OpenError>> {
        if !self.component.key_value_stores.contains(&label) {
            return Ok(Err(OpenError::AccessDenied));
        }
        if !self.app_stores.key_value_stores.contains(&label) {
            return Ok(Err(OpenError::NoSuchStore));
        }
        let path = store_path(&self.app_stores.state_dir, &label);
        Ok(
            match tokio::task::spawn_blocking(move || open_store(path)).await? {
                Ok(conn) => Ok(StoreHandle {
                    conn: Arc::new(Mutex::new(conn)),
                }),
                Err(e) => Err(OpenError::Other(e.to_string())),
            },
        )
    }

    /// Runs `f` on the store's connection on the blocking pool.
    pub(crate) async fn with_store<T: Send + 'static>(
        &mut self,
        store: &Resource<StoreHandle>,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> wasmtime::Result<rusqlite::Result<T>> {
        let conn = self.table.get(store)?.conn.clone();
        on_connection(conn, f).await
    }
}

fn kv_error(e: rusqlite::Error) -> kv::Error {
    kv::Error::Other(e.to_string())
}

impl kv::Host for HostState {}

impl kv::HostStore for HostState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, kv::Error>> {
        Ok(match self.open_key_value(label).await? {
            Ok(handle) => Ok(self.table.push(handle)?),
            Err(OpenError::AccessDenied) => Err(kv::Error::AccessDenied),
            Err(OpenError::NoSuchStore) => Err(kv::Error::NoSuchStore),
            Err(OpenError::Other(e)) => Err(kv::Error::Other(e)),
        })
    }

    async fn get(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv::Error>> {
        Ok(self
            .with_store(&self_, move |conn| get(conn, &key))
            .await?
            .map_err(kv_error))
    }

    async fn set(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        Ok(self
            .with_store(&self_, move |conn| set(conn, &key, &value))
            .await?
            .map_err(kv_error))
    }

    async fn delete(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        Ok(self
            .with_store(&self_, move |conn| delete(conn, &key))
            .await?
            .map_err(kv_error))
    }

    async fn exists(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv::Error>> {
        Ok(self
            .with_store(&self_, move |conn| exists(conn, &key))
            .await?
            .map_err(kv_error))
    }

    async fn get_keys(
        &mut self,
        self_: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, kv::Error>> {
        Ok(self.with_store(&self_, keys).await?.map_err(kv_error))
    }

    async fn drop(&mut self, rep: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}
