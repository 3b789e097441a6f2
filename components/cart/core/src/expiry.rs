//! Expired guest carts are removed, at a bounded cost per call.
//!
//! Every guest cart gets one entry in an **expiry index** when it is
//! created: the cart's key, filed under the time bucket (of
//! [`BUCKET_SECS`]) in which it would expire if nobody touched it again.
//! The sweep (`POST /api/cart/sweep`, run by a scheduler) walks the buckets
//! whose time has passed, oldest first, and for each entry:
//!
//! * the cart expired → it is swapped for a *removed* marker with the
//!   cart's usual compare-and-swap ([`crate::store::update`]), and only
//!   then deleted. A guest writing at that moment either wins the swap (the
//!   cart is live again and simply re-filed) or finds the marker, which no
//!   change ever writes over (it is [`StoreError::Missing`]: the guest is
//!   given a new token and a new cart). So no live change is ever lost, on
//!   the embedded store and on Redis, with any number of instances.
//! * the cart was touched since → it is re-filed under its new expiry;
//! * the cart is gone (or the key is a marker left by a failed delete) →
//!   the key is deleted and the entry dropped.
//!
//! Writes never scan: a guest's first change costs one `increment` and one
//! `set` more, later changes nothing. The sweep never lists keys: it costs
//! a few store calls per entry and one `exists` per empty bucket, and stops
//! after `limit` entries or [`MAX_BUCKETS_PER_CALL`] buckets (it reports
//! `more`, so a scheduler can call again at once).
//!
//! # Keys (all under `guest-expiry:`)
//!
//! * `<bucket>:count` — entries filed in the bucket (`increment`: each
//!   writer gets its own slot number) and `<bucket>:claimed` — slots handed
//!   to sweeps (`increment` by one: two sweeps never process one entry);
//!   both kept after every slot is claimed (another sweep may be between
//!   its claim of the last slots and its check that the counters are still
//!   there: found in review, a sweep that deleted them as it finished made
//!   that one drop an entry it had claimed, for good), and deleted one to
//!   two [`REAP_AFTER_SECS`] after the sweep passed them by any sweep
//!   ([`reap`], from `reaped`: the bucket below which they are gone;
//!   `reap-mark`: the cursor and when it was read). A sweep whose claim comes after
//!   that (one stalled for that long) finds `count` gone, or 0 where its
//!   read made it again, deletes what it made again, and moves on;
//! * `<bucket>:<slot>` — the cart key; deleted once processed;
//! * `runs` and `last-run-at` — completed sweep calls and the time of the
//!   last one, for `GET /metrics` ([`note_run`]);
//! * `cursor` — the oldest bucket that may still hold unclaimed entries
//!   (text, written by sweeps; every value any sweep writes is safe, since
//!   it only moves past buckets that sweep saw fully claimed);
//! * `first` — where the very first sweep starts: the bucket of the
//!   *moment* the first entry was filed (not of its expiry), minus a little
//!   slack, written by each writer that files the first entry of a bucket
//!   while it is missing (writers racing on it read their clocks at about
//!   the same moment, and the slack covers that; a writer whose write of it
//!   failed leaves it to the next one). Every entry expires after it was
//!   filed, so none is ever below it, whatever `guest_cart_idle_ttl` was or
//!   becomes; (`first-claim`, a counter older versions used to elect one
//!   writer of it, is no longer read: a winner that failed to write `first`
//!   switched the sweep off for good);
//!   the sweep then walks time forward from there, one `exists` per empty
//!   bucket (a first sweep after a long idle time catches up over several
//!   calls, each saying `more`).
//!
//! A bucket is only swept once [`CLOSE_MARGIN_SECS`] have passed after its
//! end, so every entry filed in it has been written (a writer files an
//! entry under a bucket that ends after its own clock reading, and writes
//! it right away); the margin also covers clock skew between instances.

use crate::cart::Cart;
use crate::store::{update, Kv, Step, StoreError};

/// The width of an expiry bucket (seconds).
pub const BUCKET_SECS: i64 = 5;
/// A bucket is swept this long after its end at the earliest (seconds).
pub const CLOSE_MARGIN_SECS: i64 = 5;
/// The most buckets (empty ones included) one sweep call looks at.
pub const MAX_BUCKETS_PER_CALL: usize = 2000;
/// The largest `limit` a sweep call accepts, and its default.
pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 200;
/// The most index entries one call processes, whatever its `limit`: on
/// Redis, Spin keeps every compare-and-swap handle a request swapped open,
/// each with a connection of its own, until the request ends (its `swap`
/// never removes the handle), and removing a cart is one swap, so a call
/// of 1,000 held about 1,000 connections at its end.
pub const PER_CALL: usize = 200;

const PREFIX: &str = "guest-expiry:";
const CURSOR: &str = "guest-expiry:cursor";
const REAPED: &str = "guest-expiry:reaped";
const REAP_MARK: &str = "guest-expiry:reap-mark";
/// A swept bucket's counters are deleted at least this long (and at most
/// twice this long) after the sweep passed it: no sweep call is still
/// between two of its calls that long.
pub const REAP_AFTER_SECS: i64 = 3600;
const FIRST: &str = "guest-expiry:first";
/// Written by older versions (see the module docs); a counter, never read.
const FIRST_CLAIM: &str = "guest-expiry:first-claim";
/// Guest cart keys start with this (see `Owner::key`).
const GUEST_KEY_PREFIX: &str = "cart:guest:";

/// The bucket a cart due to expire at `due` (Unix seconds) is filed under.
pub fn bucket_of(due: i64) -> i64 {
    due.div_euclid(BUCKET_SECS)
}

/// May bucket `b` be swept at `now` (every entry in it written)?
pub fn is_closed(b: i64, now: i64) -> bool {
    b.saturating_add(1).saturating_mul(BUCKET_SECS).saturating_add(CLOSE_MARGIN_SECS) <= now
}

/// Is `key` one of the index's counters (changed only by `increment`)?
pub fn is_counter_key(key: &str) -> bool {
    key == FIRST_CLAIM || key == RUNS || key.strip_prefix(PREFIX).is_some_and(|rest| rest.ends_with(":count") || rest.ends_with(":claimed"))
}

fn count_key(b: i64) -> String {
    format!("{PREFIX}{b}:count")
}

fn claimed_key(b: i64) -> String {
    format!("{PREFIX}{b}:claimed")
}

fn entry_key(b: i64, slot: i64) -> String {
    format!("{PREFIX}{b}:{slot}")
}

fn read_number<S: Kv>(store: &S, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(store.get(key)?.and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse().ok()))
}

/// Files the guest cart at `cart_key` to be looked at once `due` (Unix
/// seconds: its last change plus the idle limit) has passed; `now` is the
/// clock read just before (`due` > `now`). Call it before the cart's first
/// write, so a cart never exists unfiled (an entry whose cart never
/// appeared is dropped).
pub fn schedule<S: Kv>(store: &S, cart_key: &str, now: i64, due: i64) -> Result<(), StoreError> {
    let b = bucket_of(due.max(now.saturating_add(1)));
    let slot = store.increment(&count_key(b), 1)?;
    store.set(&entry_key(b, slot), cart_key.as_bytes())?;
    if slot == 1 && !store.exists(FIRST)? {
        // The first entry ever (or the first since a write of `first`
        // failed). Writers racing here read their clocks at about the same
        // moment; the slack covers one that was slower.
        store.set(FIRST, (bucket_of(now) - 2).to_string().as_bytes())?;
    }
    Ok(())
}

/// Completed sweep calls (`increment`), and when the last one completed
/// (Unix seconds, text; any instance's clock), for `GET /metrics`.
const RUNS: &str = "guest-expiry:runs";
const LAST_RUN: &str = "guest-expiry:last-run-at";

/// Note a completed sweep call, for the metrics endpoint's
/// `shop_sweep_runs_total{sweep="cart"}` and the age of the last run (an
/// alert fires when no sweep completed for ten minutes).
pub fn note_run<S: Kv>(store: &S, now: i64) -> Result<(), StoreError> {
    store.increment(RUNS, 1)?;
    store.set(LAST_RUN, now.to_string().as_bytes())
}

/// How many sweep calls completed and when the last did (0, 0 when none
/// ever did).
pub fn runs<S: Kv>(store: &S) -> Result<(i64, i64), StoreError> {
    let runs = if store.exists(RUNS)? { store.increment(RUNS, 0)? } else { 0 };
    Ok((runs, read_number(store, LAST_RUN)?.unwrap_or(0)))
}

/// What one sweep call did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Index entries processed.
    pub checked: usize,
    /// Guest carts removed (expired ones, and markers left behind).
    pub removed: usize,
    /// Carts changed since they were filed, filed again under their new expiry.
    pub rescheduled: usize,
    /// Due entries remain: call again.
    pub more: bool,
}

/// Removes expired guest carts due by `now` (idle limit `ttl` seconds),
/// processing at most `limit` index entries (and at most [`PER_CALL`]).
pub fn sweep<S: Kv>(store: &S, now: i64, ttl: i64, limit: usize) -> Result<SweepReport, StoreError> {
    let limit = limit.min(PER_CALL);
    let mut report = SweepReport::default();
    let start = match read_number(store, CURSOR)? {
        Some(c) => c,
        None => match read_number(store, FIRST)? {
            Some(first) => first,
            // Nothing was ever filed.
            None => return Ok(report),
        },
    };
    let mut b = start;
    // Every bucket below this one was seen fully claimed by this call.
    let mut done_below = start;
    let mut looked = 0;
    while is_closed(b, now) {
        if looked == MAX_BUCKETS_PER_CALL || report.checked >= limit {
            report.more = true;
            break;
        }
        looked += 1;
        if sweep_bucket(store, b, now, ttl, limit, &mut report)? {
            if done_below == b {
                done_below = b + 1;
            }
            b += 1;
        } else {
            report.more = true;
            break;
        }
    }
    if done_below > start {
        store.set(CURSOR, done_below.to_string().as_bytes())?;
    }
    reap(store, start, done_below, now)?;
    Ok(report)
}

/// Deletes the counters of buckets swept in full at least
/// [`REAP_AFTER_SECS`] ago, from `reaped` on, at most
/// [`MAX_BUCKETS_PER_CALL`] buckets per call. Measured from when the
/// cursor passed a bucket, not from when the bucket closed: a sweep
/// catching up on a backlog passes buckets that closed long ago, and
/// another sweep may be between two of its calls in one of them right now
/// (found in review). So `reap-mark` holds the cursor and the time it was
/// read; once that time is [`REAP_AFTER_SECS`] old, the buckets below that
/// cursor are reaped and the mark moves to the cursor now. `start` is
/// where this call's walk began: the first call of a version that reaps
/// starts there (older versions deleted the counters below it already).
fn reap<S: Kv>(store: &S, start: i64, cursor: i64, now: i64) -> Result<(), StoreError> {
    let from = match read_number(store, REAPED)? {
        Some(r) => r,
        None => {
            store.set(REAPED, start.to_string().as_bytes())?;
            start
        }
    };
    let mark = store.get(REAP_MARK)?.and_then(|v| {
        let text = String::from_utf8(v).ok()?;
        let (bucket, at) = text.trim().split_once(' ')?;
        Some((bucket.parse::<i64>().ok()?, at.parse::<i64>().ok()?))
    });
    let set_mark = || store.set(REAP_MARK, format!("{cursor} {now}").as_bytes());
    let Some((below, at)) = mark else { return set_mark() };
    if now.saturating_sub(at) < REAP_AFTER_SECS {
        return Ok(());
    }
    let mut b = from;
    while b < below && b - from < MAX_BUCKETS_PER_CALL as i64 {
        store.delete(&count_key(b))?;
        store.delete(&claimed_key(b))?;
        b += 1;
    }
    if b > from {
        store.set(REAPED, b.to_string().as_bytes())?;
    }
    if b >= below {
        set_mark()?;
    }
    Ok(())
}

/// Claims and processes entries of bucket `b` until it is fully claimed
/// (true) or the call's limit is reached (false).
fn sweep_bucket<S: Kv>(store: &S, b: i64, now: i64, ttl: i64, limit: usize, report: &mut SweepReport) -> Result<bool, StoreError> {
    let (count_key, claimed_key) = (count_key(b), claimed_key(b));
    if !store.exists(&count_key)? {
        return Ok(true);
    }
    let count = store.increment(&count_key, 0)?;
    if count == 0 {
        // Another sweep deleted it after the `exists` and this read made it
        // again (a filed bucket's count is at least 1): nothing to claim.
        store.delete(&count_key)?;
        return Ok(true);
    }
    loop {
        if report.checked >= limit {
            return Ok(false);
        }
        // One slot at a time: a failure mid-call loses at most the one entry in hand.
        let slot = store.increment(&claimed_key, 1)?;
        if slot > count {
            // Fully claimed (the bucket is closed: `count` does not grow).
            // The counters stay until [`reap`]: another sweep may be
            // between its claim and the check below.
            return Ok(true);
        }
        // The counters were reaped since this sweep looked (it stalled
        // for [`REAP_AFTER_SECS`]): then this increment made a new
        // `claimed`, and its slot may be an entry another sweep processed
        // or is processing (found in review). No writer files into a
        // closed bucket, so `count` is then gone, or 0 where a read like
        // this one made it again: either way this sweep stops here.
        if store.increment(&count_key, 0)? == 0 {
            store.delete(&count_key)?;
            store.delete(&claimed_key)?;
            return Ok(true);
        }
        let entry = entry_key(b, slot);
        if let Some(cart_key) = store.get(&entry)? {
            report.checked += 1;
            if let Ok(cart_key) = String::from_utf8(cart_key) {
                if cart_key.starts_with(GUEST_KEY_PREFIX) {
                    process(store, &cart_key, now, ttl, report)?;
                }
            }
            store.delete(&entry)?;
        }
    }
}

/// What the sweep found at a filed cart key.
enum Found {
    Removed,
    Live(i64),
    Nothing,
}

/// Removes the cart at `cart_key` if it expired, or files it again.
fn process<S: Kv>(store: &S, cart_key: &str, now: i64, ttl: i64, report: &mut SweepReport) -> Result<(), StoreError> {
    let Some(bytes) = store.get(cart_key)? else { return Ok(()) };
    let marker_left = crate::store::decode(&bytes).map(|c| c.removed).unwrap_or(false);
    let found = if marker_left {
        Found::Removed
    } else {
        let outcome = update(store, cart_key, crate::store::Create::Never, |current| -> Result<Step<Found>, StoreError> {
            Ok(match current {
                Some(c) if c.expired(now, ttl) => Step::Write(Cart { removed: true, ..Cart::default() }, Found::Removed),
                Some(c) => Step::Keep(Found::Live(c.updated_at)),
                None => Step::Keep(Found::Nothing),
            })
        });
        match outcome {
            Ok((found, _)) => found,
            // Changed by guests too often right now: look again shortly.
            Err(StoreError::Contended | StoreError::Unconfirmed) => Found::Live(now - ttl + 1),
            // Never written by this code: leave it alone.
            Err(StoreError::Corrupt(_)) => Found::Nothing,
            Err(e) => return Err(e),
        }
    };
    match found {
        Found::Removed => {
            // A marker is never written again, so this delete loses nothing.
            store.delete(cart_key)?;
            report.removed += 1;
        }
        Found::Live(updated_at) => {
            schedule(store, cart_key, now, updated_at.saturating_add(ttl))?;
            report.rescheduled += 1;
        }
        Found::Nothing => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
