//! The cart's store algorithm against simulations of Spin's SQLite and
//! Redis key-value stores (`sim.rs`), defects included.

use super::sim::{Hooked, Hooks, RedisCas, SpinRedis, SpinSqlite};
use super::*;
use std::sync::{Arc, Barrier};

const FAST: Timing = Timing {
    poll: Duration::from_millis(1),
    stale: Duration::from_millis(200),
    hold: Duration::from_millis(100),
    give_up: Duration::from_secs(10),
    backoff: Duration::from_millis(20),
};

/// A store round trip, in the concurrency tests.
const LATENCY: Duration = Duration::from_micros(100);

/// One more of `product` in the cart at `key`.
fn add<S: Kv>(store: &S, key: &str, create: Create, product: &str) -> Result<Cart, StoreError> {
    update_with(store, key, create, &FAST, |c| {
        let mut c = c.unwrap_or_default();
        let q = c.quantity_of(product);
        c.set(product, q + 1, "USD", 1).unwrap();
        Ok::<_, StoreError>(Step::Write(c, ()))
    })
    .map(|(_, written)| written.expect("a write"))
}

fn stored<S: Kv>(store: &S, key: &str) -> Cart {
    decode(&store.get(key).unwrap().expect("the cart exists")).unwrap()
}

#[test]
fn the_simulations_have_spins_defects() {
    // Redis: a swap nobody interfered with is applied and reported failed.
    let redis = SpinRedis::default();
    let mut cas = redis.cas("k").unwrap();
    assert_eq!(redis.current(&mut cas).unwrap(), None);
    assert!(redis.swap(cas, b"1").unwrap().is_err(), "reported cas-failed");
    assert_eq!(redis.value("k").as_deref(), Some(&b"1"[..]), "yet written");
    // ... so the old retry-until-success loop applies an add of 1 sixteen times.
    let mut n = 0;
    for _ in 0..MAX_ATTEMPTS {
        let mut cas = redis.cas("naive").unwrap();
        let q: u32 = redis.current(&mut cas).unwrap().map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap());
        n += 1;
        if redis.swap(cas, (q + 1).to_string().as_bytes()).unwrap().is_ok() {
            break;
        }
    }
    assert_eq!((n, redis.value("naive")), (MAX_ATTEMPTS, Some(b"16".to_vec())));

    // SQLite: two first writers of a new key both "succeed"; one is lost.
    let sqlite = SpinSqlite::default();
    let (mut a, mut b) = (sqlite.cas("k").unwrap(), sqlite.cas("k").unwrap());
    assert_eq!((sqlite.current(&mut a).unwrap(), sqlite.current(&mut b).unwrap()), (None, None));
    assert!(sqlite.swap(a, b"from a").unwrap().is_ok());
    assert!(sqlite.swap(b, b"from b").unwrap().is_ok());
    assert_eq!(sqlite.get("k").unwrap().as_deref(), Some(&b"from b"[..]));
    // With a snapshot it is a real CAS.
    let mut c = sqlite.cas("k").unwrap();
    sqlite.current(&mut c).unwrap();
    sqlite.data.lock().unwrap().insert("k".into(), b"changed".to_vec());
    assert!(sqlite.swap(c, b"from c").unwrap().is_err());
}

#[test]
fn an_added_one_is_one_on_both_stores() {
    let redis = SpinRedis::default();
    let cart = add(&redis, "cart:user:u", Create::Claim, "p").unwrap();
    assert_eq!(cart.quantity_of("p"), 1);
    assert_eq!(stored(&redis, "cart:user:u"), cart);
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let first = stored(&redis, "cart:user:u").version;
    assert!((micros - 60_000_000..=micros + 1).contains(&first), "a new cart starts from its creation time in microseconds: {first}");
    add(&redis, "cart:user:u", Create::Claim, "p").unwrap();
    assert_eq!(stored(&redis, "cart:user:u").quantity_of("p"), 2);
    assert_eq!(stored(&redis, "cart:user:u").version, first + 1, "then one up per write");
    // A guest cart's first write, by the request that minted its key.
    add(&redis, "cart:guest:g", Create::NewKey, "p").unwrap();
    assert_eq!(stored(&redis, "cart:guest:g").quantity_of("p"), 1);

    let sqlite = SpinSqlite::default();
    add(&sqlite, "cart:user:u", Create::Claim, "p").unwrap();
    add(&sqlite, "cart:guest:g", Create::NewKey, "p").unwrap();
    assert_eq!(stored(&sqlite, "cart:user:u").quantity_of("p"), 1);
    assert_eq!(stored(&sqlite, "cart:guest:g").quantity_of("p"), 1);
}

/// Many brand-new keys, each hit by several first writers at once.
fn first_writers_race<S: Kv + Send + Sync + 'static>(store: Arc<S>) {
    const KEYS: usize = 25;
    const WRITERS: usize = 6;
    for k in 0..KEYS {
        let key = format!("cart:user:{k}");
        let barrier = Arc::new(Barrier::new(WRITERS));
        let handles: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    add(&*store, &key, Create::Claim, "p").unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let cart = stored(&*store, &key);
        assert_eq!(cart.quantity_of("p"), WRITERS as u32, "a first write was lost on {key}");
        assert_eq!(cart.writes.len(), WRITERS, "one write each, none repeated");
    }
}

#[test]
fn racing_first_writes_to_a_new_cart_all_count_on_sqlite() {
    first_writers_race(Arc::new(SpinSqlite { latency: LATENCY, ..Default::default() }));
}

#[test]
fn racing_first_writes_to_a_new_cart_all_count_on_redis() {
    first_writers_race(Arc::new(SpinRedis { latency: LATENCY, ..Default::default() }));
}

fn concurrent_updates<S: Kv + Send + Sync + 'static>(store: Arc<S>) {
    update_with(&*store, "k", Create::Claim, &FAST, |c| -> Result<Step<()>, StoreError> { Ok(Step::Write(c.unwrap_or_default(), ())) }).unwrap();
    let start = stored(&*store, "k").version;
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    update_with(&*store, "k", Create::Claim, &FAST, |c| -> Result<Step<()>, StoreError> {
                        let mut c = c.unwrap_or_default();
                        let q = c.quantity_of("shared");
                        c.set("shared", (q + 1).min(99), "USD", 1).unwrap();
                        let own = format!("own{i}");
                        let mine = c.quantity_of(&own);
                        c.set(&own, mine + 1, "USD", 1).unwrap();
                        Ok(Step::Write(c, ()))
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let cart = stored(&*store, "k");
    assert_eq!(cart.quantity_of("shared"), 80, "no increment lost or repeated");
    for i in 0..8 {
        assert_eq!(cart.quantity_of(&format!("own{i}")), 10);
    }
    assert_eq!(cart.version, start + 80);
    assert_eq!(cart.writes.len(), 80.min(HISTORY));
}

#[test]
fn concurrent_updates_are_all_kept_once_on_sqlite() {
    concurrent_updates(Arc::new(SpinSqlite { latency: LATENCY, ..Default::default() }));
}

#[test]
fn concurrent_updates_are_all_kept_once_on_redis() {
    concurrent_updates(Arc::new(SpinRedis { latency: LATENCY, ..Default::default() }));
}

/// Spin's Redis store, with `others` writes by other requests landing right
/// after each of our swaps (which are applied), before we read back.
struct Crowded {
    others: usize,
}

impl Hooks<SpinRedis> for Crowded {
    fn swap(&self, inner: &SpinRedis, cas: RedisCas, value: &[u8]) -> Result<Result<(), RedisCas>, StoreError> {
        let key = cas.key().to_string();
        let key = key.as_str();
        inner.swap(cas, value)?.ok();
        for _ in 0..self.others {
            add(inner, key, Create::Never, "theirs").unwrap();
        }
        let mut fresh = inner.cas(key)?;
        inner.current(&mut fresh)?;
        Ok(Err(fresh))
    }
}

fn crowded(others: usize) -> Hooked<SpinRedis, Crowded> {
    Hooked { inner: SpinRedis::default(), hooks: Crowded { others } }
}

/// Spin's Redis store whose connection fails right after a swap went
/// through: the swap itself (Spin's re-read that hands back the handle), or
/// the read after it, answers with a store error.
struct FailsAfterSwap {
    /// Fail the swap call (else the read after it).
    in_swap: bool,
    failed: std::cell::Cell<bool>,
}

impl Hooks<SpinRedis> for FailsAfterSwap {
    fn current(&self, inner: &SpinRedis, cas: &mut RedisCas) -> Result<Option<Vec<u8>>, StoreError> {
        if self.failed.get() && !self.in_swap {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        inner.current(cas)
    }
    fn swap(&self, inner: &SpinRedis, cas: RedisCas, value: &[u8]) -> Result<Result<(), RedisCas>, StoreError> {
        let result = inner.swap(cas, value)?;
        self.failed.set(true);
        if self.in_swap {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        Ok(result)
    }
}

/// Found in review: a store error after the swap was sent answered 503
/// with `Retry-After` (cart_store_unavailable), and the client's retry
/// added the item a second time. The cart is now read back: a write found
/// there is done (the swap's error is not the client's); when even that
/// read fails the change is unconfirmed: 409 without `Retry-After`, reload
/// the cart first.
#[test]
fn a_store_failing_right_after_a_swap_is_confirmed_by_reading_back_or_unconfirmed() {
    let store = Hooked { inner: SpinRedis::default(), hooks: FailsAfterSwap { in_swap: true, failed: Default::default() } };
    add(&store.inner, "k", Create::NewKey, "mine").unwrap();
    assert!(add(&store, "k", Create::Never, "mine").is_ok(), "read back: it landed");
    assert_eq!(stored(&store.inner, "k").quantity_of("mine"), 2, "applied once");
    let store = Hooked { inner: SpinRedis::default(), hooks: FailsAfterSwap { in_swap: false, failed: Default::default() } };
    add(&store.inner, "k", Create::NewKey, "mine").unwrap();
    assert_eq!(add(&store, "k", Create::Never, "mine"), Err(StoreError::Unconfirmed), "the store cannot be read back");
    assert_eq!(stored(&store.inner, "k").quantity_of("mine"), 2, "it was applied, once");
}

/// The embedded store's swap is one statement: an error there changed
/// nothing, so it is the store's error (a retry is safe, and a sign-in merge
/// gives the guest's lines back), not an unconfirmed change.
struct SwapFailsBeforeWriting;

impl Hooks<SpinSqlite> for SwapFailsBeforeWriting {
    fn swap(&self, _inner: &SpinSqlite, _cas: <SpinSqlite as Kv>::Cas, _value: &[u8]) -> Result<Result<(), <SpinSqlite as Kv>::Cas>, StoreError> {
        Err(StoreError::Unavailable("database is locked".into()))
    }
}

#[test]
fn a_swap_that_failed_without_writing_is_the_store_s_error() {
    let store = Hooked { inner: SpinSqlite::default(), hooks: SwapFailsBeforeWriting };
    add(&store.inner, "k", Create::NewKey, "mine").unwrap();
    assert_eq!(add(&store, "k", Create::Never, "mine"), Err(StoreError::Unavailable("database is locked".into())));
    assert_eq!(stored(&store.inner, "k").quantity_of("mine"), 1, "nothing changed");
}

#[test]
fn a_write_reported_failed_but_already_built_upon_is_not_repeated() {
    let store = crowded(5);
    add(&store.inner, "k", Create::NewKey, "mine").unwrap();
    let start = stored(&store.inner, "k").version;
    add(&store, "k", Create::Never, "mine").unwrap();
    let cart = stored(&store.inner, "k");
    assert_eq!((cart.quantity_of("mine"), cart.quantity_of("theirs")), (2, 5));
    assert_eq!(cart.version, start + 6);
}

#[test]
fn a_write_buried_under_too_many_others_is_unconfirmed_not_guessed() {
    let store = crowded(HISTORY);
    add(&store.inner, "k", Create::NewKey, "mine").unwrap();
    assert_eq!(add(&store, "k", Create::Never, "mine"), Err(StoreError::Unconfirmed));
    assert_eq!(stored(&store.inner, "k").quantity_of("mine"), 2, "it was applied, once");
}

#[test]
fn a_conflicting_writer_makes_the_change_apply_again_on_top() {
    // Redis, with a write by someone else between our read and our swap:
    // the WATCH drops ours, which is then re-applied to their cart.
    let redis = SpinRedis::default();
    add(&redis, "k", Create::NewKey, "a").unwrap();
    let start = stored(&redis, "k").version;
    let mut interfered = false;
    update_with(&redis, "k", Create::Never, &FAST, |c| -> Result<Step<()>, StoreError> {
        let mut c = c.unwrap();
        if !interfered {
            interfered = true;
            add(&redis, "k", Create::Never, "b").unwrap();
        }
        let q = c.quantity_of("a");
        c.set("a", q + 1, "USD", 1).unwrap();
        Ok(Step::Write(c, ()))
    })
    .unwrap();
    let cart = stored(&redis, "k");
    assert_eq!((cart.quantity_of("a"), cart.quantity_of("b"), cart.version), (2, 1, start + 2));
}

#[test]
fn a_dead_claim_is_taken_over() {
    // A claimer won round 1 and died before creating the cart.
    let sqlite = SpinSqlite::default();
    assert_eq!(sqlite.increment(&claim_key("cart:user:u"), 1).unwrap(), 1);
    let started = Instant::now();
    add(&sqlite, "cart:user:u", Create::Claim, "p").unwrap();
    assert!(started.elapsed() >= FAST.stale, "waited for the claim to go stale first");
    assert_eq!(stored(&sqlite, "cart:user:u").quantity_of("p"), 1);
    assert_eq!(sqlite.increment(&claim_key("cart:user:u"), 0).unwrap(), 2, "round 2 took over");

    let redis = SpinRedis::default();
    redis.increment(&claim_key("cart:user:u"), 1).unwrap();
    add(&redis, "cart:user:u", Create::Claim, "p").unwrap();
    assert_eq!(stored(&redis, "cart:user:u").quantity_of("p"), 1);
}

#[test]
fn never_does_not_create_and_keep_writes_nothing() {
    let sqlite = SpinSqlite::default();
    assert_eq!(add(&sqlite, "k", Create::Never, "p"), Err(StoreError::Missing));
    let (out, written) = update(&sqlite, "k", Create::Claim, |c| Ok::<_, StoreError>(Step::Keep(c.is_none()))).unwrap();
    assert!(out && written.is_none());
    assert!(sqlite.get("k").unwrap().is_none());
    assert!(sqlite.get(&claim_key("k")).unwrap().is_none(), "nothing to create, nothing claimed");
}

#[test]
fn a_refused_change_writes_nothing() {
    let store = SpinRedis::default();
    let r: Result<((), Option<Cart>), &str> = update(&store, "k", Create::Claim, |_| Err("no"));
    assert!(r.is_err());
    assert!(store.get("k").unwrap().is_none());
}

impl From<StoreError> for &'static str {
    fn from(_: StoreError) -> Self {
        "store"
    }
}
