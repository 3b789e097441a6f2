//! Key-value stores on Redis: a label configured with
//! `[key_value_store.LABEL] type = "redis" url = "redis://..."`.
//!
//! Every operation is the one Spin's Redis store sends, read in
//! `crates/key-value-redis/src/store.rs` (spinframework/spin; the same
//! commands in v3.6.3, v4.0.2 and main), and both guest interfaces
//! (`fermyon:spin/key-value@2.0.0` and `wasi:keyvalue/{store,atomics,batch}`)
//! reach them through the same dispatch as in Spin's
//! `crates/factor-key-value/src/host.rs`:
//!
//! | operation | Redis | notes |
//! | --- | --- | --- |
//! | open | (connect once per label) + `PING` | the app-wide connection is made by the first `open` (Spin: a `OnceCell`); a failed connect is `other`; the `PING` result is ignored (Spin's `after_open`) |
//! | get / set / delete / exists | `GET` / `SET` / `DEL` / `EXISTS` | |
//! | get-keys, list-keys | `KEYS *` | every key of the server's database, not only this label's |
//! | increment | `INCRBY key delta` | the counter is stored as Redis stores it, decimal text (the SQLite store keeps 8 little-endian bytes); a value that is not an integer is `other` |
//! | get-many | `KEYS k1 k2 …` | Spin calls `keys(keys)`, not `MGET`: with two or more keys Redis refuses (`wrong number of arguments for 'keys'`, an `other` error); with one key the reply (the names matching it as a pattern) is parsed as `(key, value)` pairs, as Spin parses it |
//! | set-many / delete-many | `MSET k1 v1 …` / `DEL k1 k2 …` | empty lists never reach the store (Spin's host returns first) |
//! | cas `new` | a new connection | Spin gives every CAS its own connection, since `WATCH` is per connection |
//! | cas `current` | `WATCH key`, `GET key` | |
//! | `swap` | `MULTI`, `SET key value`, `EXEC`, then `UNWATCH key` | see below |
//!
//! **The `swap` defect, reproduced on purpose.** After `EXEC`, Spin sends
//! `UNWATCH <key>`; `UNWATCH` takes no arguments, so Redis answers
//! `ERR wrong number of arguments for 'unwatch' command`, and Spin turns
//! that error into `CasFailed` — returned before it even looks at what
//! `EXEC` did. So **every** swap on Redis reports `cas-failed`, also when
//! its `SET` went through (no other writer touched the key after `WATCH`,
//! or no `current` was called, so nothing was watched). As in Spin's host,
//! a `cas-failed` hands back a new handle on a new connection whose
//! `current` has already been called (`WATCH` + `GET`). The `WATCH` itself
//! is real: a key changed by anyone after `current` makes `EXEC` abort
//! and the write is dropped — so a reported failure means "maybe applied",
//! and only reading the key tells which. `tests/redis_key_value.rs`
//! demonstrates both cases against a real `redis-server`.
//!
//! Differences from Spin: Spin keeps a `redis` crate `ConnectionManager`
//! (it reconnects in the background) per label and per CAS; this host uses
//! a multiplexed connection per label (dropped after a connection error, so
//! the next `open` reconnects) and one per CAS, with a
//! [`CONNECT_TIMEOUT`] and no reply timeout. Only `redis://` URLs (no TLS).
//! Error messages are the `Debug` form of the `redis` crate's error, as in
//! Spin, though the crate versions (and so the wording) differ.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, RedisResult};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting to the server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Spin's `log_error`: the error's `Debug` form becomes the `other` message.
fn other(e: RedisError) -> String {
    format!("{e:?}")
}

/// Checks a runtime-config URL the way Spin does at start-up
/// (`parse_redis_url`, "Invalid Redis URL"), plus what this host can serve.
pub fn check_url(url: &str) -> Result<(), String> {
    match redis::parse_redis_url(url) {
        None => Err(format!("Invalid Redis URL {url:?}")),
        Some(parsed) if parsed.scheme() != "redis" => Err(format!(
            "Redis URL {url:?}: only `redis://` is supported by the test host (no TLS or unix sockets)"
        )),
        Some(_) => Ok(()),
    }
}

/// The Redis-backed labels of an app, each with its app-wide connection.
#[derive(Default)]
pub struct RedisStores {
    labels: BTreeMap<String, Arc<RedisKv>>,
}

impl std::fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.labels.iter().map(|(label, kv)| (label, &kv.url)))
            .finish()
    }
}

impl RedisStores {
    /// From the runtime config's label → URL map (URLs already checked).
    pub fn new(urls: &BTreeMap<String, String>) -> anyhow::Result<RedisStores> {
        let mut labels = BTreeMap::new();
        for (label, url) in urls {
            let client = redis::Client::open(url.as_str()).map_err(|e| {
                anyhow::anyhow!("runtime config [key_value_store.{label}]: {}", other(e))
            })?;
            labels.insert(
                label.clone(),
                Arc::new(RedisKv {
                    url: url.clone(),
                    client,
                    connection: tokio::sync::Mutex::new(None),
                }),
            );
        }
        Ok(RedisStores { labels })
    }

    pub fn get(&self, label: &str) -> Option<&Arc<RedisKv>> {
        self.labels.get(label)
    }
}

/// One Redis-backed label.
pub struct RedisKv {
    url: String,
    client: redis::Client,
    /// The connection every store opened on this label shares.
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

async fn connect(client: &redis::Client) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

impl RedisKv {
    /// `open`: the shared connection (made now if there is none yet), then
    /// a `PING` whose failure is ignored, as Spin's `after_open` does.
    pub async fn open(self: &Arc<Self>) -> Result<RedisStore, String> {
        let mut slot = self.connection.lock().await;
        let conn = match &*slot {
            Some(conn) => conn.clone(),
            None => {
                let conn = connect(&self.client).await.map_err(other)?;
                *slot = Some(conn.clone());
                conn
            }
        };
        drop(slot);
        let store = RedisStore {
            kv: self.clone(),
            conn,
        };
        let _ = store.query::<()>(redis::cmd("PING")).await;
        Ok(store)
    }
}

/// The host side of an open Redis-backed store (a `store` or `bucket`).
#[derive(Clone)]
pub struct RedisStore {
    kv: Arc<RedisKv>,
    conn: MultiplexedConnection,
}

impl RedisStore {
    /// Runs one command on the shared connection. A broken connection is
    /// forgotten, so the next `open` connects again.
    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, String> {
        let mut conn = self.conn.clone();
        match cmd.query_async::<T>(&mut conn).await {
            Ok(value) => Ok(value),
            Err(e) => {
                if e.is_unrecoverable_error() || e.is_connection_dropped() || e.is_io_error() {
                    *self.kv.connection.lock().await = None;
                }
                Err(other(e))
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.query(redis::cmd("GET").arg(key).clone()).await
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.query(redis::cmd("SET").arg(key).arg(value).clone())
            .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), String> {
        self.query(redis::cmd("DEL").arg(key).clone()).await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, String> {
        self.query(redis::cmd("EXISTS").arg(key).clone()).await
    }

    /// `KEYS *`.
    pub async fn keys(&self) -> Result<Vec<String>, String> {
        self.query(redis::cmd("KEYS").arg("*").clone()).await
    }

    /// Spin's `get_many`: `KEYS` with the keys as its arguments (sic).
    pub async fn get_many(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, String> {
        self.query(redis::cmd("KEYS").arg(keys).clone()).await
    }

    /// `MSET k1 v1 k2 v2 ...`.
    pub async fn set_many(&self, key_values: &[(String, Vec<u8>)]) -> Result<(), String> {
        self.query(redis::cmd("MSET").arg(key_values).clone()).await
    }

    /// `DEL k1 k2 ...`.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), String> {
        self.query(redis::cmd("DEL").arg(keys).clone()).await
    }

    /// `INCRBY key delta`.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        self.query(redis::cmd("INCRBY").arg(key).arg(delta).clone())
            .await
    }

    /// Spin's `new_compare_and_swap`: a connection of its own.
    pub async fn new_cas(&self) -> Result<RedisCas, String> {
        let conn = connect(&self.kv.client).await.map_err(other)?;
        Ok(RedisCas { conn })
    }
}

/// The connection of one compare-and-swap handle (dropped with it, which
/// also ends any `WATCH` on it).
pub struct RedisCas {
    conn: MultiplexedConnection,
}

impl RedisCas {
    /// `WATCH key`, then `GET key`.
    pub async fn current(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        redis::cmd("WATCH")
            .arg(key)
            .exec_async(&mut self.conn)
            .await
            .map_err(other)?;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn)
            .await
            .map_err(other)
    }

    /// `MULTI` / `SET` / `EXEC`, then `UNWATCH key`, exactly as Spin's
    /// `swap`: `Err(message)` is Spin's `SwapError::CasFailed`, and since
    /// Redis refuses `UNWATCH` with an argument it is always that — whether
    /// or not the `SET` was applied.
    pub async fn swap(&mut self, key: &str, value: Vec<u8>) -> Result<(), String> {
        let res: RedisResult<()> = redis::pipe()
            .atomic()
            .set(key, value)
            .query_async(&mut self.conn)
            .await;
        redis::cmd("UNWATCH")
            .arg(key)
            .exec_async(&mut self.conn)
            .await
            .map_err(other)?;
        res.map_err(other)
    }
}
