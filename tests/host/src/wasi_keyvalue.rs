//! `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2`, as Spin 3.x and 4.x
//! provide them (`crates/factor-key-value/src/host.rs`), on the same stores
//! (labels, grants, backends, data) as `fermyon:spin/key-value@2.0.0` (see
//! `key_value.rs`; Redis-backed labels: `key_value_redis.rs`).
//!
//! * `store.open(identifier)`: `identifier` is the store label; same grant
//!   and existence checks as the fermyon `open`.
//! * `bucket.list-keys(cursor)`: every key, `cursor: none`; passing a cursor
//!   is an `other` error, as in Spin.
//! * `atomics.increment`: the backend's increment (SQLite: 8 little-endian
//!   bytes of an `i64`, in an `IMMEDIATE` transaction; Redis: `INCRBY`).
//! * `atomics.cas`: `new` makes the backend's handle (SQLite: reads nothing;
//!   Redis: a connection of its own); `current` reads the value and makes it
//!   what `swap` is conditional on (SQLite: the snapshot; Redis: `WATCH`).
//!   `swap` is the backend's (see `key_value.rs` for SQLite's upsert when
//!   there is no snapshot, `key_value_redis.rs` for Redis reporting every
//!   swap as failed). On `cas-failed`, as Spin does, the old handle is
//!   dropped and the guest gets a **new** handle for the same key whose
//!   `current` has already been called (so it is refreshed, and on Redis
//!   watching the key); if making it fails, the swap ends in
//!   `store-error`.
//! * `batch`: empty lists return at once (Spin's host never calls the store
//!   for them); `get-many` returns only the keys that exist on SQLite (as
//!   Spin's SQLite store does, although the WIT describes `none` entries);
//!   `set-many`/`delete-many` run in one transaction on SQLite.

use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::key_value::{CasHandle, OpenError, StoreHandle, Swapped};
use crate::state::HostState;
use wasmtime::component::Resource;

impl store::Host for HostState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, store::Error>> {
        Ok(match self.open_key_value(identifier).await? {
            Ok(handle) => Ok(self.table.push(handle)?),
            Err(OpenError::AccessDenied) => Err(store::Error::AccessDenied),
            Err(OpenError::NoSuchStore) => Err(store::Error::NoSuchStore),
            Err(OpenError::Other(e)) => Err(store::Error::Other(e)),
        })
    }
}

impl store::HostBucket for HostState {
    async fn get(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(self
            .backend(&self_)?
            .get(key)
            .await?
            .map_err(store::Error::Other))
    }

    async fn set(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        Ok(self
            .backend(&self_)?
            .set(key, value)
            .await?
            .map_err(store::Error::Other))
    }

    async fn delete(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        Ok(self
            .backend(&self_)?
            .delete(key)
            .await?
            .map_err(store::Error::Other))
    }

    async fn exists(
        &mut self,
        self_: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        Ok(self
            .backend(&self_)?
            .exists(key)
            .await?
            .map_err(store::Error::Other))
    }

    async fn list_keys(
        &mut self,
        self_: Resource<StoreHandle>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        if cursor.is_some() {
            // Spin's wording; it never hands out a cursor either.
            return Ok(Err(store::Error::Other(
                "list_keys: cursor not supported".to_string(),
            )));
        }
        Ok(self
            .backend(&self_)?
            .keys()
            .await?
            .map(|keys| store::KeyResponse { keys, cursor: None })
            .map_err(store::Error::Other))
    }

    async fn drop(&mut self, rep: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    async fn increment(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        Ok(self
            .backend(&bucket)?
            .increment(key, delta)
            .await?
            .map_err(store::Error::Other))
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        // The guest gave the handle up, but as in Spin (whose `swap` looks
        // the handle up and never removes it) it stays open, with its
        // connection on Redis, until the instance ends: a request that
        // swaps N times holds N handles.
        let handle = self.table.get_mut(&cas)?;
        match handle.swap(value).await? {
            Swapped::Ok => Ok(Ok(())),
            Swapped::Error(e) => Ok(Err(atomics::CasError::StoreError(store::Error::Other(e)))),
            Swapped::CasFailed => {
                // As Spin: a new handle for the key, `current` called on it.
                let handle = self.table.get(&cas)?;
                let backend = handle.backend().clone();
                let key = handle.key().to_string();
                let mut fresh = match backend.new_cas(key).await? {
                    Ok(fresh) => fresh,
                    Err(e) => {
                        return Ok(Err(atomics::CasError::StoreError(store::Error::Other(e))));
                    }
                };
                if let Err(e) = fresh.current().await? {
                    return Ok(Err(atomics::CasError::StoreError(store::Error::Other(e))));
                }
                Ok(Err(atomics::CasError::CasFailed(self.table.push(fresh)?)))
            }
        }
    }
}

impl atomics::HostCas for HostState {
    async fn new(
        &mut self,
        bucket: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, store::Error>> {
        match self.backend(&bucket)?.new_cas(key).await? {
            Ok(handle) => Ok(Ok(self.table.push(handle)?)),
            Err(e) => Ok(Err(store::Error::Other(e))),
        }
    }

    async fn current(
        &mut self,
        self_: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(self
            .table
            .get_mut(&self_)?
            .current()
            .await?
            .map_err(store::Error::Other))
    }

    async fn drop(&mut self, rep: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl batch::Host for HostState {
    async fn get_many(
        &mut self,
        bucket: Resource<StoreHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, store::Error>> {
        let backend = self.backend(&bucket)?;
        if keys.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        Ok(backend.get_many(keys).await?.map_err(store::Error::Other))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<StoreHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let backend = self.backend(&bucket)?;
        if key_values.is_empty() {
            return Ok(Ok(()));
        }
        Ok(backend
            .set_many(key_values)
            .await?
            .map_err(store::Error::Other))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<StoreHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let backend = self.backend(&bucket)?;
        if keys.is_empty() {
            return Ok(Ok(()));
        }
        Ok(backend
            .delete_many(keys)
            .await?
            .map_err(store::Error::Other))
    }
}
