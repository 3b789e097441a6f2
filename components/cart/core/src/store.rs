//! Carts in key-value, changed with compare-and-swap.
//!
//! Spin's key-value store has no transactions, but it implements
//! `wasi:keyvalue/atomics` compare-and-swap (on its SQLite default, on Redis
//! and on the other backends). Every change reads the cart, applies the
//! change, and writes only if the stored cart is still the one read;
//! otherwise it reads again and re-applies. Two requests changing one cart
//! at once therefore both take effect, in some order — nothing is lost.

use crate::cart::Cart;
use spin_sdk::wit::wasi::keyvalue::atomics::{self, Cas, CasError};
use spin_sdk::wit::wasi::keyvalue::store::{self, Bucket};

/// A conflicting writer won this many times in a row: give up and let the
/// client retry, rather than spin.
pub const MAX_ATTEMPTS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store failed or is not granted.
    Unavailable(String),
    /// Too many concurrent writers on one cart.
    Contended,
    /// A stored cart did not decode (never written by this code).
    Corrupt(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(m) => write!(f, "cart store unavailable: {m}"),
            Self::Contended => f.write_str("cart changed concurrently too many times"),
            Self::Corrupt(m) => write!(f, "stored cart is corrupt: {m}"),
        }
    }
}

/// Storage with compare-and-swap; [`KvCarts`] in components, [`memory::MemoryCarts`] in tests.
pub trait CartStore {
    /// What a read remembers, to make the following write conditional.
    type Snapshot;
    /// Read a cart (None if absent).
    fn read(&self, key: &str) -> Result<(Option<Cart>, Self::Snapshot), StoreError>;
    /// Write `cart` only if the key still holds what `snapshot` saw. `Ok(false)` on a conflict.
    fn write_if_unchanged(&self, snapshot: Self::Snapshot, cart: &Cart) -> Result<bool, StoreError>;
    /// Remove a cart (used after a guest cart is merged or expired).
    fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// Apply `change` to the cart at `key` atomically, retrying on conflicts.
/// `change` sees the current cart (None if absent) and returns the new cart
/// and a result, or an error that aborts without writing.
pub fn update<S, T, E>(store: &S, key: &str, mut change: impl FnMut(Option<Cart>) -> Result<(Cart, T), E>) -> Result<T, E>
where
    S: CartStore,
    E: From<StoreError>,
{
    for _ in 0..MAX_ATTEMPTS {
        let (current, snapshot) = store.read(key)?;
        let (next, out) = change(current)?;
        if store.write_if_unchanged(snapshot, &next)? {
            return Ok(out);
        }
    }
    Err(StoreError::Contended.into())
}

fn decode(bytes: &[u8]) -> Result<Cart, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode(cart: &Cart) -> Vec<u8> {
    // Serialising a plain struct cannot fail.
    serde_json::to_vec(cart).unwrap_or_default()
}

/// Carts in a Spin key-value store, through `wasi:keyvalue` store and atomics.
pub struct KvCarts {
    bucket: Bucket,
}

impl KvCarts {
    pub fn open(label: &str) -> Result<Self, StoreError> {
        store::open(label).map(|bucket| Self { bucket }).map_err(|e| StoreError::Unavailable(format!("{e:?}")))
    }

    /// A plain read, for answering GETs.
    pub fn get(&self, key: &str) -> Result<Option<Cart>, StoreError> {
        let bytes = self.bucket.get(key).map_err(|e| StoreError::Unavailable(format!("{e:?}")))?;
        bytes.map(|b| decode(&b)).transpose()
    }
}

impl CartStore for KvCarts {
    type Snapshot = Cas;

    fn read(&self, key: &str) -> Result<(Option<Cart>, Cas), StoreError> {
        let cas = Cas::new(&self.bucket, key).map_err(|e| StoreError::Unavailable(format!("{e:?}")))?;
        let current = cas.current().map_err(|e| StoreError::Unavailable(format!("{e:?}")))?;
        Ok((current.map(|b| decode(&b)).transpose()?, cas))
    }

    fn write_if_unchanged(&self, snapshot: Cas, cart: &Cart) -> Result<bool, StoreError> {
        match atomics::swap(snapshot, &encode(cart)) {
            Ok(()) => Ok(true),
            Err(CasError::CasFailed(_)) => Ok(false),
            Err(CasError::StoreError(e)) => Err(StoreError::Unavailable(format!("{e:?}"))),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket.delete(key).map_err(|e| StoreError::Unavailable(format!("{e:?}")))
    }
}

pub mod memory {
    //! An in-memory `CartStore` with real compare-and-swap, for unit tests.
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct MemoryCarts {
        pub data: Mutex<HashMap<String, Vec<u8>>>,
    }

    impl CartStore for MemoryCarts {
        type Snapshot = (String, Option<Vec<u8>>);

        fn read(&self, key: &str) -> Result<(Option<Cart>, Self::Snapshot), StoreError> {
            let bytes = self.data.lock().map_err(|e| StoreError::Unavailable(e.to_string()))?.get(key).cloned();
            Ok((bytes.as_deref().map(decode).transpose()?, (key.to_string(), bytes)))
        }

        fn write_if_unchanged(&self, (key, seen): Self::Snapshot, cart: &Cart) -> Result<bool, StoreError> {
            let mut data = self.data.lock().map_err(|e| StoreError::Unavailable(e.to_string()))?;
            if data.get(&key) != seen.as_ref() {
                return Ok(false);
            }
            data.insert(key, encode(cart));
            Ok(true)
        }

        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.data.lock().map_err(|e| StoreError::Unavailable(e.to_string()))?.remove(key);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryCarts;
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_updates_are_all_kept() {
        let store = Arc::new(MemoryCarts::default());
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        update(&*store, "k", |c| -> Result<(Cart, ()), StoreError> {
                            let mut c = c.unwrap_or_default();
                            let q = c.quantity_of("shared");
                            c.set("shared", (q + 1).min(99), "USD", 1).unwrap();
                            c.set(&format!("own{i}"), 1, "USD", 1).unwrap();
                            Ok((c, ()))
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let (cart, _) = store.read("k").unwrap();
        let cart = cart.unwrap();
        assert_eq!(cart.quantity_of("shared"), 80, "no increment lost");
        assert_eq!(cart.lines.len(), 9);
    }

    #[test]
    fn a_refused_change_writes_nothing() {
        let store = MemoryCarts::default();
        let r: Result<(), &str> = update(&store, "k", |_| Err("no"));
        assert!(r.is_err());
        assert!(store.read("k").unwrap().0.is_none());
    }

    impl From<StoreError> for &'static str {
        fn from(_: StoreError) -> Self {
            "store"
        }
    }
}
