//! The catalog's HTTP side of the read cache (`catalog_core::read_cache`):
//! only anonymous reads use it, and `Cache-Control: no-cache` skips it.

use catalog_core::read_cache::{Cache, Cached};
use http_kit::conditional::{cacheable_tagged, etag_for};
use http_kit::{Ctx, HandlerResult, Reply};

pub use catalog_core::read_cache::invalidate;

/// A miss to fill once the answer is known.
struct Lookup {
    cache: Cache,
    key: String,
}

/// Look up `key` for this request: `Ok(hit)` on a fresh hit, `Err(lookup)`
/// on a miss (store the answer with [`Lookup::store`]), `None` when the
/// request may not use the cache (signed in, or the cache is off).
fn lookup(ctx: &Ctx, key: String) -> Option<Result<Cached, Lookup>> {
    if ctx.header("authorization").is_some() {
        return None;
    }
    let bypass = ctx.header("cache-control").is_some_and(|v| v.to_ascii_lowercase().contains("no-cache"));
    let (cache, mut hits) = Cache::get_many(std::slice::from_ref(&key))?;
    match hits.pop().flatten() {
        Some(hit) if !bypass => Some(Ok(hit)),
        _ => Some(Err(Lookup { cache, key })),
    }
}

impl Lookup {
    /// Keep `body` (tagged `etag`) as the answer to this request (best effort).
    fn store(self, body: &[u8], etag: &str) {
        self.cache.put(&self.key, body, etag);
    }
}

/// Answer an anonymous read from the cache, or with `compute` (keeping a 200
/// for the next reader); either way with `ETag`, `304` and `cache_control`,
/// so a cached answer carries the same headers as a fresh one.
pub fn public_read(ctx: &Ctx, key: String, cache_control: &str, compute: impl FnOnce() -> HandlerResult) -> HandlerResult {
    let miss = match lookup(ctx, key) {
        Some(Ok(hit)) => return Ok(cacheable_tagged(ctx, Reply::bytes(200, "application/json", hit.body), cache_control, hit.etag)),
        Some(Err(miss)) => Some(miss),
        None => None,
    };
    let reply = compute()?;
    if reply.status != 200 {
        return Ok(reply);
    }
    let etag = etag_for(&reply.body);
    if let Some(miss) = miss {
        miss.store(&reply.body, &etag);
    }
    Ok(cacheable_tagged(ctx, reply, cache_control, etag))
}
