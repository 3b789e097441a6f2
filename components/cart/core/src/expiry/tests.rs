//! The expiry sweep against the simulations of Spin's SQLite and Redis
//! key-value stores (`store/sim.rs`), defects included.

use super::*;
use crate::cart::{Cart, Owner};
use crate::store::sim::{Hooked, Hooks, SpinRedis, SpinSqlite};
use crate::store::{decode, update, Create, StoreError};
use std::sync::{Arc, Barrier};
use std::time::Duration;

const TTL: i64 = 100;
const T0: i64 = 1_800_000_000;

/// A store round trip, in the concurrency test.
const LATENCY: Duration = Duration::from_micros(100);

trait Keys: Kv + Default + Send + Sync + 'static {
    fn all_keys(&self) -> Vec<String>;
    fn slow() -> Self;
}
impl Keys for SpinSqlite {
    fn all_keys(&self) -> Vec<String> {
        self.keys()
    }
    fn slow() -> Self {
        SpinSqlite { latency: LATENCY, ..Default::default() }
    }
}
impl Keys for SpinRedis {
    fn all_keys(&self) -> Vec<String> {
        self.keys()
    }
    fn slow() -> Self {
        SpinRedis { latency: LATENCY, ..Default::default() }
    }
}

fn guest_key(n: usize) -> String {
    Owner::guest(&format!("ct_{n:0>43}")).key()
}

/// A guest's first add at `now`, filed as the cart handler files it.
fn create_guest_cart<S: Kv>(store: &S, key: &str, now: i64) {
    schedule(store, key, now, now + TTL).unwrap();
    update(store, key, Create::NewKey, |c| {
        let mut c = c.unwrap_or_default();
        c.set("p", 1, "USD", now).unwrap();
        Ok::<_, StoreError>(Step::Write(c, ()))
    })
    .unwrap();
}

/// A guest's later add at `now`: Err(Missing) if the cart was removed.
fn touch<S: Kv>(store: &S, key: &str, now: i64) -> Result<(), StoreError> {
    update(store, key, Create::Never, |c| {
        let mut c = c.unwrap_or_default();
        let q = c.quantity_of("p");
        c.set("p", q + 1, "USD", now).unwrap();
        Ok::<_, StoreError>(Step::Write(c, ()))
    })
    .map(|_| ())
}

fn guest_carts<S: Keys>(store: &S) -> Vec<String> {
    store.all_keys().into_iter().filter(|k| k.starts_with("cart:guest:")).collect()
}

/// Index keys other than the cursor and the first-bucket bookkeeping.
fn index_entries<S: Keys>(store: &S) -> Vec<String> {
    store
        .all_keys()
        .into_iter()
        .filter(|k| k.starts_with(PREFIX) && ![CURSOR, FIRST, FIRST_CLAIM, REAPED, REAP_MARK].contains(&k.as_str()))
        .collect()
}

/// Sweeps an hour apart, twice, from `now`: what the sweep passed by `now`
/// has its counters reaped by the second.
fn sweep_hours_later<S: Kv>(store: &S, now: i64) {
    sweep(store, now + REAP_AFTER_SECS, TTL, 100).unwrap();
    sweep(store, now + 2 * REAP_AFTER_SECS + 1, TTL, 100).unwrap();
}

fn removes_expired_carts_and_its_own_keys<S: Keys>() {
    let store = S::default();
    for n in 0..5 {
        create_guest_cart(&store, &guest_key(n), T0 + n as i64);
    }
    assert_eq!(sweep(&store, T0 + 50, TTL, 100).unwrap(), SweepReport::default(), "nothing is due yet");
    // Guest 4 came back before its cart expired.
    touch(&store, &guest_key(4), T0 + 90).unwrap();
    let report = sweep(&store, T0 + TTL + 30, TTL, 100).unwrap();
    assert_eq!((report.removed, report.rescheduled, report.more), (4, 1, false), "{report:?}");
    assert_eq!(guest_carts(&store), vec![guest_key(4)], "only the live cart is left");
    let entries: Vec<String> = index_entries(&store).into_iter().filter(|k| !is_counter_key(k)).collect();
    assert_eq!(entries.len(), 1, "the live cart's new entry: {entries:?}");
    // Once it expires too, nothing is left but the cursor bookkeeping,
    // and the swept buckets' counters, which go an hour later.
    let report = sweep(&store, T0 + 90 + TTL + 30, TTL, 100).unwrap();
    assert_eq!((report.removed, report.rescheduled), (1, 0));
    assert!(guest_carts(&store).is_empty());
    assert!(index_entries(&store).iter().all(|k| is_counter_key(k)), "{:?}", index_entries(&store));
    sweep_hours_later(&store, T0 + 90 + TTL + 30);
    assert!(index_entries(&store).is_empty(), "{:?}", index_entries(&store));
    // A removed guest's token opens nothing, and nothing re-creates its key.
    assert_eq!(touch(&store, &guest_key(0), T0 + 500), Err(StoreError::Missing));
    assert!(guest_carts(&store).is_empty());
}

#[test]
fn removes_expired_carts_on_sqlite() {
    removes_expired_carts_and_its_own_keys::<SpinSqlite>();
}

#[test]
fn removes_expired_carts_on_redis() {
    removes_expired_carts_and_its_own_keys::<SpinRedis>();
}

fn a_bounded_batch_per_call<S: Keys>() {
    let store = S::default();
    for n in 0..25 {
        create_guest_cart(&store, &guest_key(n), T0 + (n as i64) * 3);
    }
    let later = T0 + 1000;
    let mut calls = 0;
    loop {
        let report = sweep(&store, later, TTL, 10).unwrap();
        assert!(report.checked <= 10);
        calls += 1;
        if !report.more {
            break;
        }
    }
    assert_eq!(calls, 3);
    assert!(guest_carts(&store).is_empty());
    sweep_hours_later(&store, later);
    assert!(index_entries(&store).is_empty(), "{:?}", index_entries(&store));
}

#[test]
fn a_bounded_batch_per_call_on_sqlite() {
    a_bounded_batch_per_call::<SpinSqlite>();
}

#[test]
fn a_bounded_batch_per_call_on_redis() {
    a_bounded_batch_per_call::<SpinRedis>();
}

#[test]
fn a_marker_is_never_written_over() {
    let store = SpinSqlite::default();
    let key = guest_key(1);
    create_guest_cart(&store, &key, T0);
    // The sweep's first step landed, its delete did not (say the store went away).
    update(&store, &key, Create::Never, |_| Ok::<_, StoreError>(Step::Write(Cart { removed: true, ..Cart::default() }, ()))).unwrap();
    assert_eq!(touch(&store, &key, T0 + 1), Err(StoreError::Missing));
    assert_eq!(update(&store, &key, Create::NewKey, |_| Ok::<_, StoreError>(Step::Write(Cart::default(), ()))).err(), Some(StoreError::Missing));
    assert!(decode(&store.get(&key).unwrap().unwrap()).unwrap().removed);
}

/// Guests add to their carts while two sweeps remove the expired ones: a
/// change reported stored is never lost (its cart is still there, holding
/// it), and a cart the sweep removed first makes the change `Missing` (the
/// handler then starts a new cart under a new token).
fn guests_racing_two_sweeps<S: Keys>() {
    const CARTS: usize = 24;
    let store = Arc::new(S::slow());
    for n in 0..CARTS {
        create_guest_cart(&*store, &guest_key(n), T0);
    }
    let now = T0 + TTL + 30;
    let barrier = Arc::new(Barrier::new(CARTS + 2));
    let guests: Vec<_> = (0..CARTS)
        .map(|n| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                // Spread out, so some guests come before the sweeps reach
                // their carts and some after.
                std::thread::sleep(Duration::from_millis(n as u64));
                touch(&*store, &guest_key(n), now)
            })
        })
        .collect();
    let sweeps: Vec<_> = (0..2)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                sweep(&*store, now, TTL, 100).unwrap()
            })
        })
        .collect();
    let outcomes: Vec<_> = guests.into_iter().map(|g| g.join().unwrap()).collect();
    let reports: Vec<_> = sweeps.into_iter().map(|s| s.join().unwrap()).collect();
    let removed: usize = reports.iter().map(|r| r.removed).sum();
    let mut kept = 0;
    for (n, outcome) in outcomes.iter().enumerate() {
        let key = guest_key(n);
        match outcome {
            Ok(()) => {
                let cart = decode(&store.get(&key).unwrap().expect("a stored change keeps its cart")).unwrap();
                assert!(!cart.removed && cart.quantity_of("p") == 2, "cart {n}: {cart:?}");
                kept += 1;
            }
            Err(StoreError::Missing) => assert!(store.get(&key).unwrap().is_none(), "cart {n} removed"),
            Err(e) => panic!("cart {n}: {e}"),
        }
    }
    assert_eq!(kept + removed, CARTS, "every cart either kept its change or was removed once");
    assert_eq!(reports.iter().map(|r| r.checked).sum::<usize>(), CARTS, "each entry processed once");
    // The live carts are filed again and go once they expire.
    sweep(&*store, now + TTL + 30, TTL, 100).unwrap();
    assert!(guest_carts(&*store).is_empty());
    sweep_hours_later(&*store, now + TTL + 30);
    assert!(index_entries(&*store).is_empty(), "{:?}", index_entries(&*store));
}

#[test]
fn guests_racing_two_sweeps_on_sqlite() {
    guests_racing_two_sweeps::<SpinSqlite>();
}

#[test]
fn guests_racing_two_sweeps_on_redis() {
    guests_racing_two_sweeps::<SpinRedis>();
}

#[test]
fn buckets_close_after_their_end_and_the_margin() {
    let b = bucket_of(T0);
    assert!(!is_closed(b, T0));
    assert!(!is_closed(b, (b + 1) * BUCKET_SECS + CLOSE_MARGIN_SECS - 1));
    assert!(is_closed(b, (b + 1) * BUCKET_SECS + CLOSE_MARGIN_SECS));
    assert!(!is_closed(i64::MAX, i64::MAX - 1), "no overflow");
    assert_eq!(bucket_of(-1), -1);
}

/// Spin's SQLite store whose write of `first` fails once (a store error,
/// or the instance dying right there).
#[derive(Default)]
struct FirstWriteFails {
    failed: std::cell::Cell<bool>,
}

impl Hooks<SpinSqlite> for FirstWriteFails {
    fn set(&self, inner: &SpinSqlite, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if key == FIRST && !self.failed.replace(true) {
            return Err(StoreError::Unavailable("connection reset".into()));
        }
        inner.set(key, value)
    }
}

/// Found in review: the first writer won a claim to write `first`, and if
/// that write failed nobody else ever wrote it, so no sweep ever started.
#[test]
fn a_failed_first_write_of_the_start_is_made_by_a_later_writer() {
    let store = Hooked { inner: SpinSqlite::default(), hooks: FirstWriteFails::default() };
    // The very first guest cart's filing fails at `first` (its request
    // answers 503 before the cart is written).
    assert!(schedule(&store, &guest_key(1), T0, T0 + TTL).is_err());
    // A later guest, in another bucket.
    create_guest_cart(&store, &guest_key(2), T0 + 3 * BUCKET_SECS);
    let report = sweep(&store, T0 + 3 * BUCKET_SECS + TTL + 30, TTL, 100).unwrap();
    assert_eq!(report.removed, 1, "{report:?}");
    assert!(store.inner.keys().iter().all(|k| !k.starts_with("cart:guest:")), "{:?}", store.inner.keys());
}

/// Another sweep that, between this sweep's look at a bucket and its first
/// claim there, claims every slot and deletes the bucket's counters, its
/// entries still in hand.
#[derive(Default)]
struct OtherSweepFinishesFirst {
    done: std::cell::Cell<bool>,
}

impl Hooks<SpinSqlite> for OtherSweepFinishesFirst {
    fn increment(&self, inner: &SpinSqlite, key: &str, delta: i64) -> Result<i64, StoreError> {
        if key.ends_with(":claimed") && !self.done.replace(true) {
            let count_key = key.replace(":claimed", ":count");
            let count = inner.increment(&count_key, 0)?;
            while inner.increment(key, 1)? <= count {}
            inner.delete(&count_key)?;
            inner.delete(key)?;
        }
        inner.increment(key, delta)
    }
}

/// Found in review: the late sweep's claim made a new `claimed` counter,
/// and it processed the other sweep's entries a second time.
#[test]
fn an_entry_another_sweep_holds_is_not_processed_twice() {
    let store = Hooked { inner: SpinSqlite::default(), hooks: OtherSweepFinishesFirst::default() };
    create_guest_cart(&store, &guest_key(1), T0);
    create_guest_cart(&store, &guest_key(2), T0);
    let report = sweep(&store, T0 + TTL + 30, TTL, 100).unwrap();
    assert_eq!((report.checked, report.removed), (0, 0), "{report:?}");
    // The other sweep's entries are its own to process; no counter is left.
    let left: Vec<String> = index_entries(&store.inner);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|k| !k.ends_with(":claimed") && !k.ends_with(":count")), "{left:?}");
}

/// Another sweep that finishes a bucket, deleting its counters, between
/// this sweep's `exists` and its read of the count (which makes it again,
/// at 0).
#[derive(Default)]
struct FinishedBetweenLookAndRead {
    done: std::cell::Cell<bool>,
}

impl Hooks<SpinSqlite> for FinishedBetweenLookAndRead {
    fn increment(&self, inner: &SpinSqlite, key: &str, delta: i64) -> Result<i64, StoreError> {
        if key.ends_with(":count") && delta == 0 && !self.done.replace(true) {
            let count = inner.increment(key, 0)?;
            let claimed = key.replace(":count", ":claimed");
            while inner.increment(&claimed, 1)? <= count {}
            inner.delete(key)?;
            inner.delete(&claimed)?;
        }
        inner.increment(key, delta)
    }
}

/// Found in review: the read made the count again at 0, and a third
/// sweep, seeing it there, could take the other sweep's entries for its own.
#[test]
fn a_count_made_again_by_a_read_is_not_taken_for_the_bucket() {
    let store = Hooked { inner: SpinSqlite::default(), hooks: FinishedBetweenLookAndRead::default() };
    create_guest_cart(&store, &guest_key(1), T0);
    let report = sweep(&store, T0 + TTL + 30, TTL, 100).unwrap();
    assert_eq!(report.checked, 0, "{report:?}");
    let left = index_entries(&store.inner);
    assert_eq!(left.len(), 1, "the other sweep's entry only: {left:?}");
    assert!(left.iter().all(|k| !k.ends_with(":claimed") && !k.ends_with(":count")), "{left:?}");
}

/// Another sweep that claims past the last slot (and so finishes the
/// bucket) just after this sweep claimed that last slot, before this one
/// checks the counters are still there.
struct OtherSweepFinishesAfterMyClaim {
    now: i64,
    claimed: std::cell::Cell<bool>,
    done: std::cell::Cell<bool>,
}

impl Hooks<SpinSqlite> for OtherSweepFinishesAfterMyClaim {
    fn increment(&self, inner: &SpinSqlite, key: &str, delta: i64) -> Result<i64, StoreError> {
        if key.ends_with(":claimed") {
            self.claimed.set(true);
        } else if key.ends_with(":count") && delta == 0 && self.claimed.get() && !self.done.replace(true) {
            let other = sweep(inner, self.now, TTL, 100)?;
            assert_eq!(other.checked, 0, "the other sweep found every slot claimed");
        }
        inner.increment(key, delta)
    }
}

/// Found in review: the other sweep deleted the counters as it finished,
/// and this one, finding them gone at its check, dropped the entry it had
/// claimed: that cart was never removed, nor its entry. The counters now
/// stay until they are reaped an hour later.
#[test]
fn an_entry_claimed_as_another_sweep_finishes_is_processed() {
    let now = T0 + TTL + 30;
    let hooks = OtherSweepFinishesAfterMyClaim { now, claimed: Default::default(), done: Default::default() };
    let store = Hooked { inner: SpinSqlite::default(), hooks };
    create_guest_cart(&store, &guest_key(1), T0);
    let report = sweep(&store, now, TTL, 100).unwrap();
    assert!(store.hooks.done.get(), "the other sweep ran");
    assert_eq!((report.checked, report.removed), (1, 1), "{report:?}");
    assert!(guest_carts(&store.inner).is_empty());
    sweep_hours_later(&store.inner, now);
    assert!(index_entries(&store.inner).is_empty(), "{:?}", index_entries(&store.inner));
}

/// Found in review: the counters' hour was counted from when the bucket
/// closed, so a sweep catching up on a backlog reaped a bucket it had just
/// passed, while another sweep could be between its claim and its check
/// there. Counted from when the sweep passed it, a backlog an hour old or
/// more is swept and its counters stay for the next hour.
#[test]
fn a_backlog_s_counters_stay_an_hour_after_it_is_swept() {
    let store = SpinSqlite::default();
    create_guest_cart(&store, &guest_key(1), T0);
    let late = T0 + TTL + 3 * REAP_AFTER_SECS;
    sweep(&store, T0, TTL, 100).unwrap();
    let report = sweep(&store, late, TTL, 100).unwrap();
    assert_eq!(report.removed, 1);
    assert!(!index_entries(&store).is_empty(), "its counters are kept: {:?}", index_entries(&store));
    sweep(&store, late + 60, TTL, 100).unwrap();
    assert!(!index_entries(&store).is_empty(), "a minute later too");
    sweep_hours_later(&store, late);
    assert!(index_entries(&store).is_empty(), "{:?}", index_entries(&store));
}

/// A call processes at most [`PER_CALL`] entries whatever its limit (each
/// removal holds a Redis connection until the request ends, in Spin).
#[test]
fn a_call_processes_at_most_its_share() {
    let store = SpinSqlite::default();
    for n in 0..PER_CALL + 5 {
        create_guest_cart(&store, &guest_key(n), T0);
    }
    let first = sweep(&store, T0 + TTL + 30, TTL, MAX_LIMIT).unwrap();
    assert_eq!((first.checked, first.more), (PER_CALL, true));
    let second = sweep(&store, T0 + TTL + 30, TTL, MAX_LIMIT).unwrap();
    assert_eq!((second.removed, second.more), (5, false));
}

#[test]
fn counters_are_told_apart_from_values() {
    assert!(is_counter_key(&count_key(5)) && is_counter_key(&claimed_key(5)) && is_counter_key(FIRST_CLAIM));
    assert!(is_counter_key(RUNS) && !is_counter_key(LAST_RUN), "the sweep's run counter too (found in review: a store copy to Redis left it in SQLite's bytes)");
    assert!(!is_counter_key(&entry_key(5, 1)) && !is_counter_key(CURSOR) && !is_counter_key(FIRST));
    assert!(crate::store::is_counter_key("claim:cart:user:u1") && !crate::store::is_counter_key(&guest_key(1)));
}

/// The idle limit may change between deployments: entries filed under a
/// shorter one are due before entries filed earlier under a longer one,
/// and are still found (the walk starts where the first entry was filed,
/// not where it is due).
fn a_shorter_idle_limit_later_is_still_swept<S: Keys>() {
    let store = S::default();
    // First carts under a 30-day limit, then one under 100 s.
    let long = 30 * 86_400;
    schedule(&store, &guest_key(1), T0, T0 + long).unwrap();
    update(&store, &guest_key(1), Create::NewKey, |_| Ok::<_, StoreError>(Step::Write(Cart { updated_at: T0, ..Cart::default() }, ()))).unwrap();
    create_guest_cart(&store, &guest_key(2), T0 + 10);
    let mut removed = 0;
    for _ in 0..10 {
        let report = sweep(&store, T0 + 10 + TTL + 30, TTL, 100).unwrap();
        removed += report.removed;
        if !report.more {
            break;
        }
    }
    assert_eq!(removed, 1, "the cart filed under the shorter limit");
    assert_eq!(guest_carts(&store), vec![guest_key(1)], "the other one is not due yet");
}

#[test]
fn a_shorter_idle_limit_later_is_still_swept_on_sqlite() {
    a_shorter_idle_limit_later_is_still_swept::<SpinSqlite>();
}

#[test]
fn a_shorter_idle_limit_later_is_still_swept_on_redis() {
    a_shorter_idle_limit_later_is_still_swept::<SpinRedis>();
}

#[test]
fn a_long_idle_time_is_caught_up_over_several_calls() {
    let store = SpinSqlite::default();
    create_guest_cart(&store, &guest_key(1), T0);
    // Nobody swept for a day: 17 280 buckets to walk, 2 000 per call.
    let later = T0 + 86_400;
    let mut calls = 0;
    let removed = loop {
        calls += 1;
        let report = sweep(&store, later, TTL, 100).unwrap();
        if !report.more {
            break report.removed;
        }
        assert!(calls < 20);
    };
    assert!(calls >= 2, "bounded per call: {calls}");
    assert!(removed <= 1 && guest_carts(&store).is_empty());
}

#[test]
fn completed_sweeps_are_counted_with_the_time_of_the_last() {
    let store = SpinRedis::default();
    assert_eq!(runs(&store).unwrap(), (0, 0), "never ran");
    note_run(&store, 1_000).unwrap();
    note_run(&store, 1_060).unwrap();
    assert_eq!(runs(&store).unwrap(), (2, 1_060));
    let sqlite = SpinSqlite::default();
    note_run(&sqlite, 5).unwrap();
    assert_eq!(runs(&sqlite).unwrap(), (1, 5));
}
