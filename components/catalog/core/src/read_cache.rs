//! A short-lived cache of catalog reads in Spin key-value, shared by the
//! catalog's HTTP component (anonymous listing, product and category pages)
//! and its contract component (product look-ups for carts and checkout).
//!
//! Why: a Spin request opens a fresh SQLite connection, so every catalog
//! read pays for opening the file, parsing the schema and planning each
//! statement; Spin's key-value store keeps one connection for the app's
//! lifetime, so a hit costs one host call (`wasi:keyvalue/batch.get-many`).
//! Spin's Redis store sends get-many as a command Redis refuses, so on Redis
//! a lookup is one `get` per key: always after a failed get-many, or
//! straight away with `catalog_cache_get_many = false`, which saves that
//! failed round trip.
//! See README, "Benchmarks", for what it buys.
//!
//! What it promises:
//! - **Catalog writes invalidate it at once**: every admin write (products,
//!   categories, stock, holds made through the HTTP API) bumps a generation
//!   number after it commits, and an entry of an older generation is never
//!   served — on any instance sharing the store. Names, prices and whether
//!   a product is sold are therefore always current.
//! - **Stock moved by checkout shows within the TTL** (`catalog_cache_ttl_ms`,
//!   default 500 ms; `0` turns the cache off). Orders reserve stock hundreds
//!   of times a second at peak, so they do not invalidate; an entry is
//!   served for at most the TTL, so `available` may be up to that much
//!   behind. Reservations themselves always check exact stock in SQL.
//! - **Bounded**: entries live in 1024 slots chosen by a hash of the key,
//!   each holding the key it answers, so arbitrary query strings cannot grow
//!   the store.
//! - **Never a source of truth or of errors**: a store failure is a miss.
//! - **No stampede at expiry**: in the second half of its TTL an entry is
//!   recomputed early by a reader chosen at random (more likely the older
//!   the entry), while every other reader is still served it. Without
//!   that, under load every reader arriving after the expiry missed at once
//!   (up to one per concurrent request), each opening the database and
//!   rewriting the same entry. An entry is still never served past its TTL.

use spin_sdk::wit::wasi::keyvalue::batch;
use spin_sdk::wit::wasi::keyvalue::store::{self, Bucket};
use std::rc::Rc;

/// The key-value store label (granted in `spin.toml` to the catalog and to
/// every component the catalog contract is composed into).
pub const STORE: &str = "catalog_cache";
const GENERATION_KEY: &str = "generation";
const SLOTS: u64 = 1024;
const DEFAULT_TTL_MS: u64 = 500;

/// A stored entry: three header lines — the normalised request it answers
/// (slots are shared), the generation and the time it was stored — then the
/// body bytes as served, so a hit copies bytes instead of parsing JSON.
struct Entry<'a> {
    key: &'a str,
    generation: &'a str,
    stored_at_ms: u64,
    body: &'a [u8],
}

impl<'a> Entry<'a> {
    fn encode(&self) -> Vec<u8> {
        let mut out = format!("{}\n{}\n{}\n", self.key, self.generation, self.stored_at_ms).into_bytes();
        out.extend_from_slice(self.body);
        out
    }

    fn decode(raw: &'a [u8]) -> Option<Entry<'a>> {
        let mut parts = raw.splitn(4, |b| *b == b'\n');
        let key = std::str::from_utf8(parts.next()?).ok()?;
        let generation = std::str::from_utf8(parts.next()?).ok()?;
        let stored_at_ms = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        Some(Entry { key, generation, stored_at_ms, body: parts.next()? })
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ttl_ms() -> u64 {
    spin_sdk::variables::get("catalog_cache_ttl_ms")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_TTL_MS)
        .min(60_000)
}

/// Whether the store answers `get-many` (`catalog_cache_get_many`, default
/// `true`); `false` for Spin's Redis store, which never does.
fn get_many_works() -> bool {
    spin_sdk::variables::get("catalog_cache_get_many").map_or(true, |v| !v.trim().eq_ignore_ascii_case("false"))
}

/// Is an entry of this age served, or (a miss) recomputed by this reader?
/// Past the TTL never served; in its first half always; in its second
/// half recomputed early with a probability rising from 0 to 1 as it ages,
/// so under load one reader, not every reader at the expiry, refreshes it.
/// `draw` gives a number uniform in [0, 1), asked for only when needed.
fn served(age_ms: u64, ttl_ms: u64, draw: impl FnOnce() -> f64) -> bool {
    let half = ttl_ms / 2;
    if age_ms >= ttl_ms {
        false
    } else if age_ms <= half {
        true
    } else {
        let refresh_probability = (age_ms - half) as f64 / (ttl_ms - half) as f64;
        draw() >= refresh_probability
    }
}

/// One random number per lookup, drawn from the host only if an entry is in
/// its early-refresh window (most hits are not).
#[derive(Default)]
struct Draw(std::cell::OnceCell<f64>);

impl Draw {
    fn get(&self) -> f64 {
        *self.0.get_or_init(|| {
            let mut bytes = [0u8; 8];
            // Without randomness, refresh now: a recompute, never a stale answer.
            if getrandom::fill(&mut bytes).is_err() {
                return 0.0;
            }
            (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
        })
    }
}

fn slot(key: &str) -> String {
    // FNV-1a: stable across builds and instances.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("slot:{:04}", h % SLOTS)
}

/// The store, opened once per instance (a Spin instance serves one
/// request): a request that looks up the cache twice, or looks it up and
/// then invalidates it, makes one `open` call, not one per use. Only the
/// handle is kept; every lookup reads the generation again. A failed open
/// is not kept, so the next use tries again.
fn bucket() -> Option<Rc<Bucket>> {
    thread_local! {
        static OPENED: std::cell::OnceCell<Rc<Bucket>> = const { std::cell::OnceCell::new() };
    }
    OPENED.with(|opened| {
        if let Some(b) = opened.get() {
            return Some(b.clone());
        }
        let b = Rc::new(store::open(STORE).ok()?);
        let _ = opened.set(b.clone());
        Some(b)
    })
}

/// An open cache: the generation current when it was opened, for the
/// reads and writes of one request.
pub struct Cache {
    bucket: Rc<Bucket>,
    generation: String,
    ttl_ms: u64,
}

impl Cache {
    /// Open the cache and fetch `keys` with the generation: one host call
    /// (`get-many`), or one per key where the store has no working get-many.
    /// `None` when the cache is off or unavailable; otherwise the cache and,
    /// per key, the body of a fresh entry of the current generation.
    pub fn get_many(keys: &[String]) -> Option<(Cache, Vec<Option<Vec<u8>>>)> {
        let ttl_ms = ttl_ms();
        if ttl_ms == 0 {
            return None;
        }
        let bucket = bucket()?;
        let mut names = vec![GENERATION_KEY.to_string()];
        names.extend(keys.iter().map(|k| slot(k)));
        // Spin's Redis store answers get-many with `KEYS k1 k2 ...`, which
        // Redis refuses for two or more keys: one get per key instead, after
        // the refusal or (when the operator says the store is such) without
        // asking.
        let batched = if get_many_works() { batch::get_many(&bucket, &names).ok() } else { None };
        let found = match batched {
            Some(found) => found,
            None => names
                .iter()
                .map(|k| bucket.get(k).map(|v| (k.clone(), v)))
                .collect::<Result<Vec<_>, _>>()
                .ok()?,
        };
        let value_of = |name: &str| found.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_ref());
        let generation = value_of(GENERATION_KEY).map(|g| String::from_utf8_lossy(g).into_owned()).unwrap_or_default();
        let now = now_ms();
        let draw = Draw::default();
        let bodies = keys
            .iter()
            .map(|key| {
                let entry = Entry::decode(value_of(&slot(key))?)?;
                let served = served(now.saturating_sub(entry.stored_at_ms), ttl_ms, || draw.get());
                (entry.key == key && entry.generation == generation && served).then(|| entry.body.to_vec())
            })
            .collect();
        Some((Cache { bucket, generation, ttl_ms }, bodies))
    }

    /// Keep `body` as the answer for `key` (best effort), under the
    /// generation read when the cache was opened: if a write bumped it
    /// since, the entry is never served.
    pub fn put(&self, key: &str, body: &[u8]) {
        // Keys and generations never hold a newline (ours are built from
        // parsed, validated parameters); refuse rather than store a bad entry.
        if self.ttl_ms == 0 || key.contains('\n') || self.generation.contains('\n') {
            return;
        }
        let entry = Entry { key, generation: &self.generation, stored_at_ms: now_ms(), body };
        let _ = self.bucket.set(&slot(key), &entry.encode());
    }
}

/// After a catalog write has committed: no entry made before it is served
/// again, on any instance sharing the store.
pub fn invalidate() {
    if let Some(bucket) = bucket() {
        // Time plus randomness: two instances writing in the same millisecond
        // still make different generations.
        let mut nonce = [0u8; 8];
        let _ = getrandom::fill(&mut nonce);
        let generation = format!("{}-{:016x}", now_ms(), u64::from_le_bytes(nonce));
        let _ = bucket.set(GENERATION_KEY, generation.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_garbage_is_a_miss() {
        let body = b"{\"products\":[]}\nwith a newline";
        let raw = Entry { key: "products|x|1", generation: "7-abc", stored_at_ms: 42, body }.encode();
        let back = Entry::decode(&raw).unwrap();
        assert_eq!((back.key, back.generation, back.stored_at_ms, back.body), ("products|x|1", "7-abc", 42, &body[..]));
        assert!(Entry::decode(b"only\ntwo").is_none());
        assert!(Entry::decode(b"a\nb\nnot-a-number\nbody").is_none());
    }

    #[test]
    fn entries_are_refreshed_early_at_random_and_never_served_past_the_ttl() {
        let never = || panic!("no draw needed");
        assert!(served(0, 500, never));
        assert!(served(250, 500, never), "first half: always served");
        assert!(!served(500, 500, never), "expired");
        assert!(!served(10_000, 500, never));
        // Second half: refreshed when the draw is below the entry's progress through it.
        assert!(served(251, 500, || 0.01), "just past half-way almost nobody refreshes");
        assert!(!served(375, 500, || 0.49));
        assert!(served(375, 500, || 0.5));
        assert!(!served(499, 500, || 0.99));
        assert!(!served(1, 1, never), "a 1 ms TTL: nothing older than it");
        assert!(served(0, 1, never));
        let d = Draw::default();
        let x = d.get();
        assert!((0.0..1.0).contains(&x));
        assert_eq!(d.get(), x, "one draw per lookup");
    }

    #[test]
    fn slots_are_bounded_and_stable() {
        assert_eq!(slot("products|a"), slot("products|a"));
        let n: u64 = slot("anything").trim_start_matches("slot:").parse().unwrap();
        assert!(n < SLOTS);
    }
}
