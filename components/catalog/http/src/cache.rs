//! The catalog's HTTP side of the read cache (`catalog_core::read_cache`):
//! only anonymous reads use it, and `Cache-Control: no-cache` skips it.

use catalog_core::read_cache::Cache;
use http_kit::conditional::cacheable;
use http_kit::{Ctx, HandlerResult, Reply};

pub use catalog_core::read_cache::invalidate;

/// A miss to fill once the answer is known.
struct Lookup {
    cache: Cache,
    key: String,
}

/// Look up `key` for this request: `Ok(body)` on a fresh hit, `Err(lookup)`
/// on a miss (store the answer with [`Lookup::store`]), `None` when the
/// request may not use the cache (signed in, or the cache is off).
fn lookup(ctx: &Ctx, key: String) -> Option<Result<Vec<u8>, Lookup>> {
    if ctx.header("authorization").is_some() {
        return None;
    }
    let bypass = ctx.header("cache-control").is_some_and(|v| v.to_ascii_lowercase().contains("no-cache"));
    let (cache, mut bodies) = Cache::get_many(std::slice::from_ref(&key))?;
    match bodies.pop().flatten() {
        Some(body) if !bypass => Some(Ok(body)),
        _ => Some(Err(Lookup { cache, key })),
    }
}

impl Lookup {
    /// Keep `body` as the answer to this request (best effort).
    fn store(self, body: &[u8]) {
        self.cache.put(&self.key, body);
    }
}

/// Answer an anonymous read from the cache, or with `compute` (keeping a 200
/// for the next reader); either way with `ETag`, `304` and `cache_control`,
/// so a cached answer carries the same headers as a fresh one.
pub fn public_read(ctx: &Ctx, key: String, cache_control: &str, compute: impl FnOnce() -> HandlerResult) -> HandlerResult {
    let miss = match lookup(ctx, key) {
        Some(Ok(body)) => return Ok(cacheable(ctx, Reply::bytes(200, "application/json", body), cache_control)),
        Some(Err(miss)) => Some(miss),
        None => None,
    };
    let reply = compute()?;
    if let (Some(miss), 200) = (miss, reply.status) {
        miss.store(&reply.body);
    }
    Ok(cacheable(ctx, reply, cache_control))
}
