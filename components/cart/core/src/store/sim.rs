//! In-memory stand-ins for Spin's two key-value backends, with their real
//! compare-and-swap semantics (defects included), so the cart's algorithm
//! is tested natively, with threads, against both.
//!
//! * [`SpinSqlite`] — `crates/key-value-spin/src/store.rs`: `new` reads
//!   nothing, `current` sets the snapshot, `swap` with a snapshot is a
//!   conditional update and without one an upsert; `cas-failed` hands back
//!   a new handle with `current` called; `increment` keeps 8 little-endian
//!   bytes and panics on any other value (as Spin does).
//! * [`SpinRedis`] — `crates/key-value-redis/src/store.rs`: `current` is
//!   `WATCH` + `GET` (the watch is a per-key modification count here),
//!   `swap` writes if nothing touched the key since the watch (or nothing
//!   was watched) and then **always** reports `cas-failed`; `increment` is
//!   `INCRBY` on decimal text.

use super::{Kv, StoreError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

fn wait(latency: Duration) {
    if !latency.is_zero() {
        std::thread::sleep(latency);
    }
}

#[derive(Default)]
pub struct SpinSqlite {
    pub data: Mutex<HashMap<String, Vec<u8>>>,
    /// Added to every operation, as a store's round trip would be.
    pub latency: Duration,
}

impl SpinSqlite {
    /// Every key stored, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.data.lock().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }
}

pub struct SqliteCas {
    key: String,
    snapshot: Option<Vec<u8>>,
}

impl Kv for SpinSqlite {
    type Cas = SqliteCas;

    fn cas(&self, key: &str) -> Result<SqliteCas, StoreError> {
        wait(self.latency);
        Ok(SqliteCas { key: key.to_string(), snapshot: None })
    }

    fn current(&self, cas: &mut SqliteCas) -> Result<Option<Vec<u8>>, StoreError> {
        wait(self.latency);
        let value = self.get(&cas.key)?;
        cas.snapshot.clone_from(&value);
        Ok(value)
    }

    fn swap(&self, cas: SqliteCas, value: &[u8]) -> Result<Result<(), SqliteCas>, StoreError> {
        wait(self.latency);
        {
            let mut data = self.data.lock().unwrap();
            match &cas.snapshot {
                Some(old) if data.get(&cas.key) == Some(old) => {
                    data.insert(cas.key.clone(), value.to_vec());
                    return Ok(Ok(()));
                }
                Some(_) => {}
                None => {
                    // ON CONFLICT DO UPDATE: not a CAS.
                    data.insert(cas.key.clone(), value.to_vec());
                    return Ok(Ok(()));
                }
            }
        }
        let mut fresh = self.cas(&cas.key)?;
        self.current(&mut fresh)?;
        Ok(Err(fresh))
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        wait(self.latency);
        let mut data = self.data.lock().unwrap();
        let now = match data.get(key) {
            None => 0,
            Some(v) => i64::from_le_bytes(v.clone().try_into().expect("incorrect length")),
        } + delta;
        data.insert(key.to_string(), now.to_le_bytes().to_vec());
        Ok(now)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        wait(self.latency);
        Ok(self.data.lock().unwrap().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        wait(self.latency);
        self.data.lock().unwrap().insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        wait(self.latency);
        self.data.lock().unwrap().remove(key);
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        wait(self.latency);
        Ok(self.data.lock().unwrap().contains_key(key))
    }
}

/// A key's value, and how many times the key was modified (what `WATCH`
/// notices).
type Entry = (Option<Vec<u8>>, u64);

#[derive(Default)]
pub struct SpinRedis {
    pub data: Mutex<HashMap<String, Entry>>,
    /// Added to every operation, as a store's round trip would be.
    pub latency: Duration,
}

pub struct RedisCas {
    key: String,
    /// The key's modification count at `WATCH`.
    watched: Option<u64>,
}

impl RedisCas {
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl SpinRedis {
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.data.lock().unwrap().get(key).and_then(|(v, _)| v.clone())
    }

    /// Every key holding a value, sorted.
    pub fn keys(&self) -> Vec<String> {
        let data = self.data.lock().unwrap();
        let mut keys: Vec<String> = data.iter().filter(|(_, (v, _))| v.is_some()).map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    }

}

impl Kv for SpinRedis {
    type Cas = RedisCas;

    fn cas(&self, key: &str) -> Result<RedisCas, StoreError> {
        wait(self.latency);
        Ok(RedisCas { key: key.to_string(), watched: None })
    }

    fn current(&self, cas: &mut RedisCas) -> Result<Option<Vec<u8>>, StoreError> {
        wait(self.latency);
        let data = self.data.lock().unwrap();
        let (value, modified) = data.get(&cas.key).cloned().unwrap_or_default();
        cas.watched = Some(modified);
        Ok(value)
    }

    fn swap(&self, cas: RedisCas, value: &[u8]) -> Result<Result<(), RedisCas>, StoreError> {
        wait(self.latency);
        {
            let mut data = self.data.lock().unwrap();
            let entry = data.entry(cas.key.clone()).or_default();
            if cas.watched.is_none_or(|w| w == entry.1) {
                entry.0 = Some(value.to_vec());
                entry.1 += 1;
            }
        }
        // UNWATCH <key> is refused: CasFailed, whatever EXEC did.
        let mut fresh = self.cas(&cas.key)?;
        self.current(&mut fresh)?;
        Ok(Err(fresh))
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        wait(self.latency);
        let mut data = self.data.lock().unwrap();
        let entry = data.entry(key.to_string()).or_default();
        let now = match &entry.0 {
            None => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| StoreError::Unavailable("ERR value is not an integer".into()))?,
        } + delta;
        entry.0 = Some(now.to_string().into_bytes());
        entry.1 += 1;
        Ok(now)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        wait(self.latency);
        Ok(self.value(key))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        wait(self.latency);
        let mut data = self.data.lock().unwrap();
        let entry = data.entry(key.to_string()).or_default();
        entry.0 = Some(value.to_vec());
        entry.1 += 1;
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        wait(self.latency);
        // DEL touches the key for WATCH; the count survives the value.
        if let Some(entry) = self.data.lock().unwrap().get_mut(key) {
            entry.0 = None;
            entry.1 += 1;
        }
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        wait(self.latency);
        Ok(self.value(key).is_some())
    }
}

/// The store `inner`, except where `hooks` step in: the faults and the
/// interleavings tests inject at one operation.
pub struct Hooked<S, H> {
    pub inner: S,
    pub hooks: H,
}

/// What a [`Hooked`] store does instead of its inner one; each defaults to
/// the inner store's operation.
pub trait Hooks<S: Kv> {
    fn current(&self, inner: &S, cas: &mut S::Cas) -> Result<Option<Vec<u8>>, StoreError> {
        inner.current(cas)
    }
    fn swap(&self, inner: &S, cas: S::Cas, value: &[u8]) -> Result<Result<(), S::Cas>, StoreError> {
        inner.swap(cas, value)
    }
    fn set(&self, inner: &S, key: &str, value: &[u8]) -> Result<(), StoreError> {
        inner.set(key, value)
    }
    fn increment(&self, inner: &S, key: &str, delta: i64) -> Result<i64, StoreError> {
        inner.increment(key, delta)
    }
}

impl<S: Kv, H: Hooks<S>> Kv for Hooked<S, H> {
    type Cas = S::Cas;
    fn cas(&self, key: &str) -> Result<S::Cas, StoreError> {
        self.inner.cas(key)
    }
    fn current(&self, cas: &mut S::Cas) -> Result<Option<Vec<u8>>, StoreError> {
        self.hooks.current(&self.inner, cas)
    }
    fn swap(&self, cas: S::Cas, value: &[u8]) -> Result<Result<(), S::Cas>, StoreError> {
        self.hooks.swap(&self.inner, cas, value)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.hooks.increment(&self.inner, key, delta)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.hooks.set(&self.inner, key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.exists(key)
    }
}
