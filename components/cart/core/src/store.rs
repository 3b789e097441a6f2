//! Carts in Spin key-value, changed with compare-and-swap — correct on the
//! backends operators actually run, whose CAS is not quite a CAS.
//!
//! # What the stores really do
//!
//! Spin's key-value has no transactions, only `wasi:keyvalue/atomics`
//! (compare-and-swap, increment). Read in Spin's source (the same in
//! v3.6.3, v4.0.2 and main):
//!
//! * **Redis** (`crates/key-value-redis/src/store.rs`): `current` is
//!   `WATCH` + `GET`, `swap` is `MULTI`/`SET`/`EXEC` and then `UNWATCH <key>`,
//!   which Redis refuses — so **every swap reports `cas-failed`, also when
//!   its write went through**. (The `WATCH` is real: a swap whose key was
//!   changed after `current` is dropped.) A naive retry loop re-applies an
//!   applied change until it gives up: an added 1 became 6 on `spin up`.
//! * **Embedded SQLite** (`crates/key-value-spin/src/store.rs`): `swap`
//!   against a value read by `current` is a real conditional update, but
//!   when the key was missing at `current` it is an **upsert** — two first
//!   writers of a brand-new key both "succeed" and one change is lost.
//!
//! # The design
//!
//! 1. **Every write is recognisable.** [`update`] gives each change a random
//!    write id and stores, with the cart, the ids of the last [`HISTORY`]
//!    writes (`Cart::writes`), and sets `version` to exactly one more than
//!    the cart it read (a new cart starts from its creation time in
//!    microseconds, see [`first_version`]). When a swap reports `cas-failed`, the handle handed
//!    back is read (`current`, which also re-watches on Redis): if our id is
//!    in its history, our write landed — done, never applied twice. If not,
//!    and the cart is fewer than [`HISTORY`] versions past ours, it did not
//!    land, and the change is re-applied to what is there now. (More than
//!    [`HISTORY`] writes in between would make it undecidable: that is
//!    reported as [`StoreError::Unconfirmed`] instead of guessed.)
//!
//!    Why this is exact: a write that landed is version `v+1` (CAS from `v`).
//!    Any later write that lands is a swap conditional on the value it read
//!    (SQLite: `UPDATE … WHERE value = old`; Redis: `WATCH`), so it read a
//!    cart that already held our write, and carries its history forward with
//!    one more id. Hence while fewer than [`HISTORY`] writes followed, our
//!    id is in the stored history iff our write landed. Values never repeat
//!    (fresh ids), so there is no ABA.
//! 2. **A key is never created by two writers.** The only unconditional
//!    writes in this scheme are swaps on a missing key, so each creation has
//!    exactly one possible writer ([`Create`]):
//!    * a guest cart's key derives from a token minted in the same request
//!      (nobody else knows it yet): [`Create::NewKey`];
//!    * a user's cart is created through an atomic `increment` claim
//!      ([`Create::Claim`]): the writer whose `increment(claim, 1)` turns the
//!      claim counter from `v` to exactly `v+1` (one caller can) writes an
//!      empty genesis cart; everyone else waits for the key to appear, then
//!      all changes — the claimer's too — are conditional swaps from there.
//!      If the cart does not appear for [`Timing::stale`] while the counter
//!      stays at `v` (its claimer died between the two calls), the next
//!      claim round `v+1` takes over. A claimer writes only within
//!      [`Timing::hold`] of asking (far less than `stale`), so two rounds
//!      cannot both write unless a store call itself stalls for seconds —
//!      and on Redis the genesis swap is `WATCH`-conditional anyway;
//!    * everywhere else a missing cart is not created ([`Create::Never`]).
//!
//!    Nothing deletes a live cart (there is no conditional delete, and a
//!    plain one could erase a concurrent change). The expiry sweep
//!    (`expiry.rs`) first swaps an expired guest cart for a *removed*
//!    marker with this same conditional update; a marker is never written
//!    again (a change that needs it gets [`StoreError::Missing`]), so only
//!    then is its key deleted. A deleted guest key is never created again:
//!    its token was minted once.
//!
//! The counters are only ever touched by `increment` (Spin's SQLite store
//! panics on `increment` of a value that is not 8 bytes, so a cart key is
//! never incremented).

use crate::cart::Cart;
use spin_sdk::wit::wasi::keyvalue::atomics::{self, Cas, CasError};
use spin_sdk::wit::wasi::keyvalue::store::{self, Bucket};
use std::time::{Duration, Instant};

/// A conflicting writer won this many times in a row (each verified as not
/// applied): give up and let the client retry, rather than spin.
pub const MAX_ATTEMPTS: usize = 16;

/// How many write ids a stored cart remembers.
pub const HISTORY: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store failed or is not granted.
    Unavailable(String),
    /// Too many concurrent writers on one cart.
    Contended,
    /// A stored cart did not decode (never written by this code).
    Corrupt(String),
    /// The change needs a cart that does not exist and may not be created
    /// here ([`Create::Never`]).
    Missing,
    /// A write was sent and whether it landed cannot be told: the store
    /// failed right after it, or it was reported failed and so many other
    /// writes followed that its id left the history.
    Unconfirmed,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(m) => write!(f, "cart store unavailable: {m}"),
            Self::Contended => f.write_str("cart changed concurrently too many times"),
            Self::Corrupt(m) => write!(f, "stored cart is corrupt: {m}"),
            Self::Missing => f.write_str("the cart does not exist"),
            Self::Unconfirmed => f.write_str("could not confirm whether the change was stored"),
        }
    }
}

/// The key-value operations carts need, shaped like `wasi:keyvalue`:
/// [`KvCarts`] in components, simulations of Spin's stores in tests.
pub trait Kv {
    /// A compare-and-swap handle (`atomics.cas`).
    type Cas;
    /// `cas.new`.
    fn cas(&self, key: &str) -> Result<Self::Cas, StoreError>;
    /// `cas.current`: the value, which the next swap is conditional on.
    fn current(&self, cas: &mut Self::Cas) -> Result<Option<Vec<u8>>, StoreError>;
    /// `atomics.swap`: `Ok(Err(handle))` is `cas-failed` (maybe applied!)
    /// with the handle handed back.
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Result<(), Self::Cas>, StoreError>;
    /// `atomics.increment`.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError>;
    /// `bucket.get`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// `bucket.set` (unconditional: only for keys with a single writer).
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// `bucket.delete` (unconditional: see `expiry.rs` for when it is safe).
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// `bucket.exists`.
    fn exists(&self, key: &str) -> Result<bool, StoreError>;
}

/// May [`update`] create the cart if it does not exist?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// No: a change that needs to write is [`StoreError::Missing`].
    Never,
    /// Yes, directly: this request minted the key, so it is its only writer.
    NewKey,
    /// Yes, through the increment claim (keys anyone may write first).
    Claim,
}

/// What a change decided.
pub enum Step<T> {
    /// Store this cart (`version` and `writes` are set by [`update`]).
    Write(Cart, T),
    /// Nothing to store.
    Keep(T),
}

/// How long the creation claim waits (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between looks at a cart someone else is creating.
    pub poll: Duration,
    /// A claim round whose cart has not appeared for this long is dead.
    pub stale: Duration,
    /// A claimer that took longer than this to win the claim does not write.
    pub hold: Duration,
    /// Give up waiting for a cart to be created ([`StoreError::Contended`]).
    pub give_up: Duration,
    /// After a lost race, wait a random time up to `2^losses` ms, capped
    /// here, so racing writers spread out instead of colliding again.
    pub backoff: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: Duration::from_millis(10),
            stale: Duration::from_secs(3),
            hold: Duration::from_secs(1),
            give_up: Duration::from_secs(8),
            backoff: Duration::from_millis(20),
        }
    }
}

/// The claim counter for creating `key`.
pub fn claim_key(key: &str) -> String {
    format!("claim:{key}")
}

/// Is `key` a counter (only ever changed by `increment`)? Each backend
/// keeps counters in its own form (Spin's SQLite store: 8 little-endian
/// bytes; Redis: decimal text), so a copy between backends converts them.
pub fn is_counter_key(key: &str) -> bool {
    key.starts_with("claim:") || crate::expiry::is_counter_key(key)
}

/// A new id for one change's write (what [`Cart::writes`] records).
pub fn new_write_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Unavailable(format!("random source failed: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn decode(bytes: &[u8]) -> Result<Cart, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode(cart: &Cart) -> Vec<u8> {
    // Serialising a plain struct cannot fail.
    serde_json::to_vec(cart).unwrap_or_default()
}

/// [`update_with`] with the default [`Timing`].
pub fn update<S, T, E>(
    store: &S,
    key: &str,
    create: Create,
    change: impl FnMut(Option<Cart>) -> Result<Step<T>, E>,
) -> Result<(T, Option<Cart>), E>
where
    S: Kv,
    E: From<StoreError>,
{
    update_with(store, key, create, &Timing::default(), change)
}

/// Apply `change` to the cart at `key` exactly once, retrying on conflicts.
/// `change` sees the current cart (None if absent) and decides; it may be
/// called several times, always with the cart as stored at that moment.
/// Returns its result and the cart as written (None if nothing was).
pub fn update_with<S, T, E>(
    store: &S,
    key: &str,
    create: Create,
    timing: &Timing,
    change: impl FnMut(Option<Cart>) -> Result<Step<T>, E>,
) -> Result<(T, Option<Cart>), E>
where
    S: Kv,
    E: From<StoreError>,
{
    update_as(store, key, create, timing, &new_write_id()?, change)
}

/// [`update_with`], its write recorded under `id` (from [`new_write_id`]):
/// after [`StoreError::Unconfirmed`], [`landed`] tells whether it did.
pub fn update_as<S, T, E>(
    store: &S,
    key: &str,
    create: Create,
    timing: &Timing,
    id: &str,
    mut change: impl FnMut(Option<Cart>) -> Result<Step<T>, E>,
) -> Result<(T, Option<Cart>), E>
where
    S: Kv,
    E: From<StoreError>,
{
    let id = id.to_string();
    let mut cas = store.cas(key)?;
    let mut bytes = store.current(&mut cas)?;
    let mut failed = 0;
    loop {
        let stored = bytes.as_deref().map(decode).transpose()?;
        // A cart the expiry sweep removed is never written again: the
        // change sees no cart, and may not create one under this key.
        let removed = stored.as_ref().is_some_and(|c| c.removed);
        let current = stored.filter(|c| !c.removed);
        let base_version = current.as_ref().map_or_else(first_version, |c| c.version);
        let mut writes = current.as_ref().map(|c| c.writes.clone()).unwrap_or_default();
        let missing = current.is_none();
        let (mut next, out) = match change(current)? {
            Step::Keep(out) => return Ok((out, None)),
            Step::Write(next, out) => (next, out),
        };
        if removed {
            return Err(StoreError::Missing.into());
        }
        if missing {
            match create {
                Create::Never => return Err(StoreError::Missing.into()),
                Create::NewKey => {}
                Create::Claim => {
                    // Make the key exist (one writer), then change it like
                    // any existing cart.
                    create_by_claim(store, key, timing)?;
                    cas = store.cas(key)?;
                    bytes = store.current(&mut cas)?;
                    failed += 1;
                    if failed >= MAX_ATTEMPTS {
                        return Err(StoreError::Contended.into());
                    }
                    continue;
                }
            }
        }
        next.version = base_version + 1;
        writes.push(id.clone());
        let excess = writes.len().saturating_sub(HISTORY);
        writes.drain(..excess);
        next.writes = writes;
        // Once the swap is sent, a store error no longer says whether the
        // write landed: Spin's Redis store writes, then reads the key again
        // on a new connection to hand back the handle, and that can fail
        // after the write went through (the embedded store's swap is one
        // statement: there an error means it did not land). So the cart is
        // read back: our write in it is done; not in it, the error stands
        // (nothing was changed, a retry is safe); unreadable, or the read
        // that checks a reported failure failing, is unconfirmed (the client
        // reloads the cart), never an error a retry would apply twice.
        let swapped = match store.swap(cas, &encode(&next)) {
            Ok(swapped) => swapped,
            Err(failed) => {
                let mut check = store.cas(key).map_err(|_| StoreError::Unconfirmed)?;
                let now = store.current(&mut check).map_err(|_| StoreError::Unconfirmed)?;
                let landed = now.as_deref().map(decode).transpose().map_err(|_| StoreError::Unconfirmed)?.is_some_and(|c| c.writes.contains(&id));
                return if landed { Ok((out, Some(next))) } else { Err(failed.into()) };
            }
        };
        match swapped {
            Ok(()) => return Ok((out, Some(next))),
            Err(handed_back) => {
                // Reported failed: maybe applied. Read what is there now.
                cas = handed_back;
                bytes = store.current(&mut cas).map_err(|_| StoreError::Unconfirmed)?;
                if let Some(now) = bytes.as_deref().map(decode).transpose()? {
                    if now.writes.contains(&id) {
                        return Ok((out, Some(next)));
                    }
                    if now.version >= next.version + HISTORY as u64 {
                        return Err(StoreError::Unconfirmed.into());
                    }
                }
                failed += 1;
                if failed >= MAX_ATTEMPTS {
                    return Err(StoreError::Contended.into());
                }
                back_off(timing, failed);
                // The handed-back handle was read after the wait too.
                bytes = store.current(&mut cas)?;
            }
        }
    }
}

/// Whether the write recorded as `id` ([`update_as`]) is in the cart at
/// `key`: `Some(true)` it landed, `Some(false)` it did not, `None` when
/// the cart cannot tell (unreadable, or [`HISTORY`] writes or more came
/// after the version `id` would have made, `written_version`).
pub fn landed<S: Kv>(store: &S, key: &str, id: &str, written_version: u64) -> Option<bool> {
    let mut cas = store.cas(key).ok()?;
    let bytes = store.current(&mut cas).ok()?;
    let Some(cart) = bytes.as_deref().map(decode).transpose().ok()? else { return Some(false) };
    if cart.writes.iter().any(|w| w == id) {
        Some(true)
    } else if cart.version >= written_version + HISTORY as u64 {
        None
    } else {
        Some(false)
    }
}

/// Sleeps a random time in `0..=min(2^losses ms, timing.backoff)`.
fn back_off(timing: &Timing, losses: usize) {
    let cap = Duration::from_millis(1u64 << losses.min(16)).min(timing.backoff);
    let mut r = [0u8; 4];
    if getrandom::fill(&mut r).is_ok() && !cap.is_zero() {
        let fraction = f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX);
        std::thread::sleep(cap.mul_f64(fraction));
    }
}

/// Makes `key` exist, written by the one winner of a claim round.
fn create_by_claim<S: Kv>(store: &S, key: &str, timing: &Timing) -> Result<(), StoreError> {
    let claim = claim_key(key);
    let started = Instant::now();
    // The claim counter's value, and since when this request has seen it.
    let mut seen: Option<(i64, Instant)> = None;
    loop {
        if store.get(key)?.is_some() {
            return Ok(());
        }
        let round = store.increment(&claim, 0)?;
        let dead = matches!(seen, Some((value, since)) if value == round && since.elapsed() >= timing.stale);
        if round == 0 || dead {
            let asked = Instant::now();
            if store.increment(&claim, 1)? == round + 1 {
                // This request holds round `round + 1`: nobody else does.
                if asked.elapsed() > timing.hold {
                    return Err(StoreError::Contended);
                }
                return write_genesis(store, key);
            }
        }
        if seen.map(|(value, _)| value) != Some(round) {
            seen = Some((round, Instant::now()));
        }
        if started.elapsed() > timing.give_up {
            return Err(StoreError::Contended);
        }
        std::thread::sleep(timing.poll);
    }
}

/// The empty cart a claimer creates (the same bytes whoever writes it).
fn write_genesis<S: Kv>(store: &S, key: &str) -> Result<(), StoreError> {
    let mut cas = store.cas(key)?;
    if store.current(&mut cas)?.is_some() {
        return Ok(());
    }
    // `cas-failed` is fine (on Redis it is always reported): the caller
    // reads the key again either way.
    store.swap(cas, &encode(&Cart { version: first_version(), ..Cart::default() }))?.ok();
    Ok(())
}

/// The version a new cart starts from: the time of its creation in
/// microseconds since the Unix epoch, so a cart created after the store
/// lost its keys (a Redis restart without persistence, an eviction) never
/// repeats a version the account's earlier carts had. Orders record the
/// version they were placed from, one order per version and account
/// (found in review: a cart that restarted at 1 after a Redis restart
/// reached a version already ordered, and checkout answered 409
/// `cart_already_ordered` naming an old order). Exact as long as the clock
/// does not step back: a cart moves up by one per write, and no cart takes
/// a write per microsecond.
fn first_version() -> u64 {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    u64::try_from(micros).unwrap_or(u64::MAX / 2).max(1)
}

fn unavailable(e: impl std::fmt::Debug) -> StoreError {
    StoreError::Unavailable(format!("{e:?}"))
}

/// Carts in a Spin key-value store, through `wasi:keyvalue` store and atomics.
pub struct KvCarts {
    bucket: Bucket,
}

impl KvCarts {
    pub fn open(label: &str) -> Result<Self, StoreError> {
        store::open(label).map(|bucket| Self { bucket }).map_err(unavailable)
    }

    /// A plain read, for answering GETs (a cart the expiry sweep removed
    /// reads as none).
    pub fn load(&self, key: &str) -> Result<Option<Cart>, StoreError> {
        Ok(self.get(key)?.map(|b| decode(&b)).transpose()?.filter(|c| !c.removed))
    }
}

impl Kv for KvCarts {
    type Cas = Cas;

    fn cas(&self, key: &str) -> Result<Cas, StoreError> {
        Cas::new(&self.bucket, key).map_err(unavailable)
    }

    fn current(&self, cas: &mut Cas) -> Result<Option<Vec<u8>>, StoreError> {
        cas.current().map_err(unavailable)
    }

    fn swap(&self, cas: Cas, value: &[u8]) -> Result<Result<(), Cas>, StoreError> {
        match atomics::swap(cas, value) {
            Ok(()) => Ok(Ok(())),
            Err(CasError::CasFailed(handed_back)) => Ok(Err(handed_back)),
            Err(CasError::StoreError(e)) => Err(unavailable(e)),
        }
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        atomics::increment(&self.bucket, key, delta).map_err(unavailable)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bucket.get(key).map_err(unavailable)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.bucket.set(key, value).map_err(unavailable)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket.delete(key).map_err(unavailable)
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.bucket.exists(key).map_err(unavailable)
    }
}

#[cfg(test)]
pub(crate) mod sim;

#[cfg(test)]
mod tests;
