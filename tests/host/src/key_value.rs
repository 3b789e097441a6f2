//! Key-value stores, for both guest interfaces Spin 3.x serves on the same
//! stores: `fermyon:spin/key-value@2.0.0` (here) and
//! `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` (`wasi_keyvalue.rs`),
//! so a value written through one is read through the other. This module
//! holds the storage operations both use, on the label's backend:
//!
//! * **SQLite** (`type = "spin"`, and labels with no runtime config): one
//!   file per label (`<state dir>/key_value/<label>.db`) in Spin's table
//!   layout (`spin_key_value (store, key, value)`, rows keyed by the label
//!   and the key, so tools that read Spin's files read these), so values survive
//!   across requests and host restarts on the same state dir, as with
//!   `spin up`. The operations follow Spin's `crates/key-value-spin/src/store.rs`.
//!   Like Spin's `KeyValueSqlite` (a `OnceLock<Arc<Mutex<Connection>>>` per
//!   store), every open of one file shares a single connection for the
//!   host's lifetime (rollback journal, rusqlite's default 5 s busy
//!   timeout), so guests serialise on its mutex, not on SQLite's file lock;
//!   calls run on the blocking pool since SQLite may still wait on another
//!   process's lock. `increment` and `set-many` run in
//!   a transaction, deferred as in Spin (`in_transaction`): its first
//!   write takes the file's lock, so they hold across connections and
//!   processes on the same file, not just within this host.
//! * **Redis** (`type = "redis"`, `url`): `key_value_redis.rs`, the commands
//!   Spin's Redis store sends, including its compare-and-swap defect.
//!
//! Compare-and-swap on SQLite is Spin's, including where it is not a real
//! CAS: `new` reads nothing; `current` reads the value and makes it the
//! snapshot; `swap` with a snapshot is `UPDATE ... WHERE value = snapshot`
//! (one statement: atomic across instances, connections and hosts), but
//! `swap` with no snapshot — the key was missing at `current`, or
//! `current` was never called — is an upsert that overwrites a value
//! inserted meanwhile, so two first writers of a new key both "succeed".
//!
//! `open` checks the component's `key_value_stores` grant first
//! (`access-denied`), then whether the label exists (`no-such-store`), in
//! Spin's order.

use crate::bindings::fermyon::spin::key_value as kv;
use crate::key_value_redis::{RedisCas, RedisStore};
use crate::state::HostState;
use rusqlite::OptionalExtension;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmtime::component::Resource;

pub type SharedConnection = Arc<Mutex<rusqlite::Connection>>;

/// A store operation's own failure: the message of an `other` error.
pub(crate) type StoreResult<T> = Result<T, String>;

/// Where an open store's data lives.
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqliteStore),
    Redis(RedisStore),
}

/// A label's SQLite store: the file's shared connection and the label,
/// which Spin's table keys every row by (`store`, `key`).
#[derive(Clone)]
pub(crate) struct SqliteStore {
    conn: SharedConnection,
    name: Arc<str>,
}

/// The host side of a guest's `store` (fermyon) or `bucket` (wasi) resource.
pub struct StoreHandle {
    pub(crate) backend: Backend,
}

/// The host side of a guest's `wasi:keyvalue/atomics.cas` resource.
pub struct CasHandle {
    backend: Backend,
    key: String,
    state: CasState,
}

enum CasState {
    /// The value `swap` is conditional on (`None`: not read, or missing).
    Sqlite { snapshot: Option<Vec<u8>> },
    /// The handle's own connection, where `current` leaves its `WATCH`.
    Redis(RedisCas),
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

/// The one connection per store file, opened on first use (Spin opens its
/// store's connection once and keeps it for the app's lifetime).
fn open_store(path: PathBuf) -> rusqlite::Result<SharedConnection> {
    static OPEN: std::sync::OnceLock<Mutex<std::collections::HashMap<PathBuf, SharedConnection>>> =
        std::sync::OnceLock::new();
    let mut open = OPEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    // A state dir removed and made again (tests do) needs a new connection.
    if let Some(conn) = open.get(&path).filter(|_| path.exists()) {
        return Ok(conn.clone());
    }
    let conn = rusqlite::Connection::open(&path)?;
    conn.execute(SPIN_TABLE, [])?;
    // The `rarray` table function, for get-many (as Spin loads it).
    rusqlite::vtab::array::load_module(&conn)?;
    let shared: SharedConnection = Arc::new(Mutex::new(conn));
    open.insert(path, shared.clone());
    Ok(shared)
}

/// Spin's key-value table (`crates/key-value-spin`), created on first open.
const SPIN_TABLE: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
           store TEXT NOT NULL,
           key   TEXT NOT NULL,
           value BLOB NOT NULL,
           PRIMARY KEY (store, key)
         )";

/// What `scripts/prepare-kv.py` does before `spin up`: create (or convert)
/// the embedded key-value file of `label` under `state_dir` in WAL mode,
/// with Spin's table, before a host opens it. Answers the journal mode the
/// file ends in (`wal` unless it is in use).
pub fn prepare_in_wal_mode(state_dir: &Path, label: &str) -> rusqlite::Result<String> {
    let path = store_path(state_dir, label);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let conn = rusqlite::Connection::open(&path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute(SPIN_TABLE, [])?;
    Ok(mode)
}

/// Runs `f` on `conn` in place, as Spin's SQLite store does
/// (`tokio::task::block_in_place`: the calling worker thread runs it and
/// the runtime moves its other tasks elsewhere meanwhile), not as a hop to
/// the blocking pool.
async fn on_connection<T: Send + 'static>(
    conn: SharedConnection,
    f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
) -> wasmtime::Result<rusqlite::Result<T>> {
    Ok(tokio::task::block_in_place(move || {
        let conn = conn.lock().unwrap_or_else(|poison| poison.into_inner());
        f(&conn)
    }))
}

// The storage operations, shared by both interfaces.

pub(crate) fn get(conn: &rusqlite::Connection, store: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    // Prepared once per connection and kept, as Spin does (`prepare_cached`).
    conn.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
        .query_row([store, key], |row| row.get(0))
        .optional()
}

pub(crate) fn set(conn: &rusqlite::Connection, store: &str, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(rusqlite::params![store, key, value])
    .map(|_| ())
}

pub(crate) fn delete(conn: &rusqlite::Connection, store: &str, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
        .execute([store, key])
        .map(|_| ())
}

pub(crate) fn exists(conn: &rusqlite::Connection, store: &str, key: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS(SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)")?
        .query_row([store, key], |row| row.get(0))
}

pub(crate) fn keys(conn: &rusqlite::Connection, store: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
    let keys = stmt
        .query_map([store], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(keys)
}

/// Runs `f` inside a transaction as Spin's SQLite store does
/// (`Connection::transaction`: a deferred `BEGIN`). One process keeps one
/// connection per store behind a mutex, so nothing interleaves with `f`
/// there; two processes sharing the file can see the upgrade of a read to
/// a write refused (`SQLITE_BUSY`), as under two `spin up`s. Commits if `f`
/// returns `Ok(Ok(_))`, rolls back otherwise.
pub(crate) fn in_transaction<T, E>(
    conn: &rusqlite::Connection,
    f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<Result<T, E>>,
) -> rusqlite::Result<Result<T, E>> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Deferred)?;
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
    store: &str,
    key: &str,
    delta: i64,
) -> rusqlite::Result<Result<i64, String>> {
    in_transaction(conn, |tx| {
        let current = match get(tx, store, key)? {
            None => 0,
            Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                Ok(bytes) => i64::from_le_bytes(bytes),
                Err(_) => {
                    return Ok(Err(format!(
                        "increment: the value at {key:?} is {} bytes, not an 8-byte little-endian i64",
                        bytes.len()
                    )));
                }
            },
        };
        let Some(new) = current.checked_add(delta) else {
            return Ok(Err(format!("increment: {current} + {delta} overflows i64")));
        };
        set(tx, store, key, &new.to_le_bytes())?;
        Ok(Ok(new))
    })
}

/// Spin's SQLite `swap` (`crates/key-value-spin/src/store.rs`): with a
/// snapshot, `UPDATE ... WHERE value = snapshot`, one statement, so it is
/// atomic across connections; **without one (the key was missing at
/// `current`, or `current` was never called) an upsert**, which overwrites
/// whatever was inserted meanwhile. Returns whether exactly one row
/// changed (always, for the upsert).
pub(crate) fn compare_and_swap(
    conn: &rusqlite::Connection,
    store: &str,
    key: &str,
    expected: Option<&[u8]>,
    value: &[u8],
) -> rusqlite::Result<bool> {
    let changed = match expected {
        Some(expected) => conn.execute(
            "UPDATE spin_key_value SET value = ?4 WHERE store = ?1 AND key = ?2 AND value = ?3",
            rusqlite::params![store, key, expected, value],
        )?,
        None => conn.execute(
            "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
            rusqlite::params![store, key, value],
        )?,
    };
    Ok(changed == 1)
}
/// Runs `f` on a SQLite connection on the blocking pool, errors as text.
async fn sqlite<T: Send + 'static>(
    store: &SqliteStore,
    op: &str,
    f: impl FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<T> + Send + 'static,
) -> wasmtime::Result<StoreResult<T>> {
    let name = store.name.clone();
    crate::sqlite::trace_as("kv", &name, 0, op);
    Ok(on_connection(store.conn.clone(), move |c| f(c, &name))
        .await?
        .map_err(|e| e.to_string()))
}

/// The operations, on whichever backend the store has. The outer `Result`
/// is a host failure (a trap), the inner one the store's error.
impl Backend {
    pub(crate) async fn get(&self, key: String) -> wasmtime::Result<StoreResult<Option<Vec<u8>>>> {
        match self {
            Backend::Sqlite(conn) => sqlite(conn, "get", move |c, s| get(c, s, &key)).await,
            Backend::Redis(redis) => Ok(redis.get(&key).await),
        }
    }

    pub(crate) async fn set(
        &self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<StoreResult<()>> {
        match self {
            Backend::Sqlite(conn) => sqlite(conn, "set", move |c, s| set(c, s, &key, &value)).await,
            Backend::Redis(redis) => Ok(redis.set(&key, &value).await),
        }
    }

    pub(crate) async fn delete(&self, key: String) -> wasmtime::Result<StoreResult<()>> {
        match self {
            Backend::Sqlite(conn) => sqlite(conn, "delete", move |c, s| delete(c, s, &key)).await,
            Backend::Redis(redis) => Ok(redis.delete(&key).await),
        }
    }

    pub(crate) async fn exists(&self, key: String) -> wasmtime::Result<StoreResult<bool>> {
        match self {
            Backend::Sqlite(conn) => sqlite(conn, "exists", move |c, s| exists(c, s, &key)).await,
            Backend::Redis(redis) => Ok(redis.exists(&key).await),
        }
    }

    pub(crate) async fn keys(&self) -> wasmtime::Result<StoreResult<Vec<String>>> {
        match self {
            Backend::Sqlite(conn) => sqlite(conn, "keys", |c, s| keys(c, s)).await,
            Backend::Redis(redis) => Ok(redis.keys().await),
        }
    }

    /// Adds `delta` to the counter at `key` (missing: 0), returns the sum.
    pub(crate) async fn increment(
        &self,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<StoreResult<i64>> {
        match self {
            Backend::Sqlite(conn) => Ok(sqlite(conn, "increment", move |c, s| increment(c, s, &key, delta))
                .await?
                .and_then(|outcome| outcome)),
            Backend::Redis(redis) => Ok(redis.increment(&key, delta).await),
        }
    }

    /// The keys that exist, with their values (SQLite: missing keys are
    /// left out, as in Spin's SQLite store; Redis: see `key_value_redis`).
    pub(crate) async fn get_many(
        &self,
        keys: Vec<String>,
    ) -> wasmtime::Result<StoreResult<Vec<(String, Option<Vec<u8>>)>>> {
        match self {
            Backend::Sqlite(conn) => {
                // One statement for every key, as Spin's store does (an
                // `IN rarray(...)` query); keys with no value are left out.
                sqlite(conn, "get-many", move |c, s| {
                    let keys: Vec<rusqlite::types::Value> = keys.into_iter().map(rusqlite::types::Value::from).collect();
                    c.prepare_cached("SELECT key, value FROM spin_key_value WHERE store = ?1 AND key IN rarray(?2)")?
                        .query_map(rusqlite::params![s, std::rc::Rc::new(keys)], |row| Ok((row.get::<_, String>(0)?, Some(row.get::<_, Vec<u8>>(1)?))))?
                        .collect()
                })
                .await
            }
            Backend::Redis(redis) => Ok(redis.get_many(&keys).await),
        }
    }

    pub(crate) async fn set_many(
        &self,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<StoreResult<()>> {
        match self {
            Backend::Sqlite(conn) => {
                sqlite(conn, "set-many", move |c, s| {
                    in_transaction(c, |tx| {
                        for (key, value) in &key_values {
                            set(tx, s, key, value)?;
                        }
                        Ok(Ok::<(), ()>(()))
                    })
                    .map(|_| ())
                })
                .await
            }
            Backend::Redis(redis) => Ok(redis.set_many(&key_values).await),
        }
    }

    pub(crate) async fn delete_many(&self, keys: Vec<String>) -> wasmtime::Result<StoreResult<()>> {
        match self {
            Backend::Sqlite(conn) => {
                sqlite(conn, "delete-many", move |c, s| {
                    in_transaction(c, |tx| {
                        for key in &keys {
                            delete(tx, s, key)?;
                        }
                        Ok(Ok::<(), ()>(()))
                    })
                    .map(|_| ())
                })
                .await
            }
            Backend::Redis(redis) => Ok(redis.delete_many(&keys).await),
        }
    }

    /// Spin's `new_compare_and_swap`: SQLite reads nothing yet; Redis opens
    /// the handle's own connection.
    pub(crate) async fn new_cas(&self, key: String) -> wasmtime::Result<StoreResult<CasHandle>> {
        let state = match self {
            Backend::Sqlite(store) => {
                crate::sqlite::trace_as("kv", &store.name, 0, "cas.new");
                CasState::Sqlite { snapshot: None }
            }
            Backend::Redis(redis) => match redis.new_cas().await {
                Ok(cas) => CasState::Redis(cas),
                Err(e) => return Ok(Err(e)),
            },
        };
        Ok(Ok(CasHandle {
            backend: self.clone(),
            key,
            state,
        }))
    }
}

/// How a `swap` ended, in Spin's terms (`SwapError`).
pub(crate) enum Swapped {
    Ok,
    /// `CasFailed`: the guest gets `cas-failed` with a fresh handle.
    CasFailed,
    /// `Other`: the guest gets `store-error(other)`.
    Error(String),
}

impl CasHandle {
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The value now stored; it becomes what `swap` is conditional on
    /// (SQLite: the snapshot; Redis: a `WATCH` on the handle's connection).
    pub(crate) async fn current(&mut self) -> wasmtime::Result<StoreResult<Option<Vec<u8>>>> {
        let CasHandle {
            backend,
            key,
            state,
        } = self;
        match (backend, state) {
            (Backend::Sqlite(conn), CasState::Sqlite { snapshot }) => {
                let read_key = key.clone();
                let value = sqlite(conn, "cas.current", move |c, s| get(c, s, &read_key)).await?;
                if let Ok(value) = &value {
                    snapshot.clone_from(value);
                }
                Ok(value)
            }
            (_, CasState::Redis(cas)) => Ok(cas.current(key).await),
            (Backend::Redis(_), CasState::Sqlite { .. }) => {
                unreachable!("a Redis store makes Redis handles")
            }
        }
    }

    pub(crate) async fn swap(&mut self, value: Vec<u8>) -> wasmtime::Result<Swapped> {
        let CasHandle {
            backend,
            key,
            state,
        } = self;
        Ok(match (backend, state) {
            (Backend::Sqlite(conn), CasState::Sqlite { snapshot }) => {
                let (key, expected) = (key.clone(), snapshot.clone());
                match sqlite(conn, "cas.swap", move |c, s| {
                    compare_and_swap(c, s, &key, expected.as_deref(), &value)
                })
                .await?
                {
                    Ok(true) => Swapped::Ok,
                    Ok(false) => Swapped::CasFailed,
                    Err(e) => Swapped::Error(e),
                }
            }
            // Every error of Spin's Redis swap is `CasFailed`.
            (_, CasState::Redis(cas)) => match cas.swap(key, value).await {
                Ok(()) => Swapped::Ok,
                Err(_) => Swapped::CasFailed,
            },
            (Backend::Redis(_), CasState::Sqlite { .. }) => {
                unreachable!("a Redis store makes Redis handles")
            }
        })
    }
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
        if let Some(redis) = self.app_stores.key_value_redis.get(&label) {
            return Ok(match redis.open().await {
                Ok(store) => Ok(StoreHandle {
                    backend: Backend::Redis(store),
                }),
                Err(e) => Err(OpenError::Other(e)),
            });
        }
        let path = store_path(&self.app_stores.state_dir, &label);
        crate::sqlite::trace_as("kv", &label, 0, "open");
        Ok(
            // In place, as Spin's store manager does (`block_in_place`).
            match tokio::task::block_in_place(move || open_store(path)) {
                Ok(conn) => Ok(StoreHandle {
                    backend: Backend::Sqlite(SqliteStore {
                        conn,
                        name: label.into(),
                    }),
                }),
                Err(e) => Err(OpenError::Other(e.to_string())),
            },
        )
    }

    /// The backend of an open store.
    pub(crate) fn backend(&self, store: &Resource<StoreHandle>) -> wasmtime::Result<Backend> {
        Ok(self.table.get(store)?.backend.clone())
    }
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
            .backend(&self_)?
            .get(key)
            .await?
            .map_err(kv::Error::Other))
    }

    async fn set(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        Ok(self
            .backend(&self_)?
            .set(key, value)
            .await?
            .map_err(kv::Error::Other))
    }

    async fn delete(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        Ok(self
            .backend(&self_)?
            .delete(key)
            .await?
            .map_err(kv::Error::Other))
    }

    async fn exists(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv::Error>> {
        Ok(self
            .backend(&self_)?
            .exists(key)
            .await?
            .map_err(kv::Error::Other))
    }

    async fn get_keys(
        &mut self,
        self_: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, kv::Error>> {
        Ok(self
            .backend(&self_)?
            .keys()
            .await?
            .map_err(kv::Error::Other))
    }

    async fn drop(&mut self, rep: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}
