//! `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch): shared data with
//! `fermyon:spin/key-value`, grants, atomic increment and compare-and-swap
//! under real concurrency (several instances, connections and hosts on the
//! same SQLite file).

mod common;

use common::{fixture_options, start, TempDir, TestHost};
use serde_json::{json, Value};
use shop_test_host::RunningHost;
use std::sync::Arc;

fn wkv(
    app: &TestHost,
    component: &str,
    store: &str,
    op: &str,
    key: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> common::Reply {
    let mut headers = vec![
        ("x-action", "wkv"),
        ("x-store", store),
        ("x-op", op),
        ("x-key", key),
    ];
    headers.extend_from_slice(extra);
    app.post(&format!("/{component}/wkv"), &headers, body)
}

fn kv(app: &TestHost, store: &str, op: &str, key: &str, value: &str) -> common::Reply {
    app.post(
        "/probe/kv",
        &[
            ("x-action", "kv"),
            ("x-store", store),
            ("x-op", op),
            ("x-key", key),
        ],
        value,
    )
}

#[test]
fn wasi_store_and_fermyon_key_value_share_the_data() {
    let app = start(&[]);
    // wasi → fermyon
    wkv(&app, "probe", "carts", "set", "from-wasi", &[], "w-value").ok();
    assert_eq!(
        kv(&app, "carts", "get", "from-wasi", "").ok()["value"],
        "w-value"
    );
    // fermyon → wasi
    kv(&app, "carts", "set", "from-fermyon", "f-value").ok();
    assert_eq!(
        wkv(&app, "probe", "carts", "get", "from-fermyon", &[], "").ok()["value"],
        "f-value"
    );
    assert_eq!(
        wkv(&app, "probe", "carts", "exists", "from-fermyon", &[], "").ok()["value"],
        true
    );
    assert_eq!(
        wkv(&app, "probe", "carts", "exists", "nope", &[], "").ok()["value"],
        false
    );
    assert_eq!(
        wkv(&app, "probe", "carts", "get", "nope", &[], "").ok()["value"],
        Value::Null
    );
    // Same label, same store; other labels stay separate.
    assert_eq!(
        wkv(&app, "probe", "default", "get", "from-fermyon", &[], "").ok()["value"],
        Value::Null
    );
    assert_eq!(
        wkv(&app, "probe", "carts", "keys", "", &[], "").ok()["value"],
        json!({ "keys": ["from-fermyon", "from-wasi"], "cursor": null })
    );
    // A cursor is refused, as in Spin (which never hands one out).
    assert!(
        wkv(&app, "probe", "carts", "keys", "", &[("x-cursor", "x")], "")
            .error()
            .contains("cursor not supported")
    );
    // Delete through wasi, gone through fermyon.
    wkv(&app, "probe", "carts", "delete", "from-fermyon", &[], "").ok();
    assert_eq!(
        kv(&app, "carts", "get", "from-fermyon", "").ok()["value"],
        Value::Null
    );
    assert!(app.state.path().join("key_value/carts.db").is_file());
}

#[test]
fn wasi_open_without_grant_is_access_denied() {
    let app = start(&[]);
    // `limited` has no key_value_stores at all.
    let error = wkv(&app, "limited", "default", "get", "k", &[], "").error();
    assert!(error.contains("AccessDenied"), "{error}");
    // `probe` is granted default and carts, not this declared-nowhere label.
    let error = wkv(&app, "probe", "sessions", "get", "k", &[], "").error();
    assert!(error.contains("AccessDenied"), "{error}");
}

#[test]
fn increment_is_atomic_across_concurrent_requests() {
    let app = Arc::new(start(&[]));
    const N: i64 = 40;
    let handles: Vec<_> = (1..=N)
        .map(|delta| {
            let app = app.clone();
            std::thread::spawn(move || {
                wkv(
                    &app,
                    "probe",
                    "default",
                    "incr",
                    "hits",
                    &[("x-delta", &delta.to_string())],
                    "",
                )
                .ok()["value"]
                    .as_i64()
                    .unwrap()
            })
        })
        .collect();
    let mut returned: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let total = N * (N + 1) / 2;
    // Every increment saw a distinct running total, the last one the sum.
    returned.sort();
    returned.dedup();
    assert_eq!(
        returned.len(),
        N as usize,
        "two increments saw the same total"
    );
    assert_eq!(*returned.last().unwrap(), total);
    // Stored as Spin stores it: the i64's 8 little-endian bytes.
    assert_eq!(
        wkv(&app, "probe", "default", "get-bytes", "hits", &[], "").ok()["value"],
        json!(total.to_le_bytes())
    );
    // Negative deltas, and a missing key starts at 0.
    assert_eq!(
        wkv(
            &app,
            "probe",
            "default",
            "incr",
            "hits",
            &[("x-delta", "-10")],
            ""
        )
        .ok()["value"],
        total - 10
    );
    assert_eq!(
        wkv(
            &app,
            "probe",
            "default",
            "incr",
            "fresh",
            &[("x-delta", "-3")],
            ""
        )
        .ok()["value"],
        -3
    );
    // A value that is not a counter is an error, not a guess.
    wkv(&app, "probe", "default", "set", "text", &[], "hello").ok();
    let error = wkv(
        &app,
        "probe",
        "default",
        "incr",
        "text",
        &[("x-delta", "1")],
        "",
    )
    .error();
    assert!(error.contains("Other"), "{error}");
    assert_eq!(
        wkv(&app, "probe", "default", "get", "text", &[], "").ok()["value"],
        "hello"
    );
}

#[test]
fn cas_fails_when_the_key_changed_and_hands_back_a_refreshed_handle() {
    let app = start(&[]);
    let report = wkv(&app, "probe", "default", "cas-conflict", "c", &[], "").ok()["value"].clone();
    assert_eq!(
        report,
        json!({
            "seen": "A",
            "first": "cas-failed",
            // The handle handed back is updated to the value now stored ...
            "handed_back_current": "B",
            // ... so swapping with it succeeds.
            "retry": "ok",
            "after": "D",
            // No snapshot (no `current` call; the same for a key that was
            // missing at `current`): Spin's SQLite store upserts, so the
            // swap "succeeds" over a value inserted meanwhile. Not a real
            // CAS, as in Spin (`crates/key-value-spin/src/store.rs`).
            "missing_swap": "ok",
            "missing_after": "blind",
        })
    );
}

/// N concurrent read-modify-write loops (`new` → `current` → `swap`, retry
/// on `cas-failed`), half of them on a second host sharing the state dir,
/// so on other connections to the same SQLite file: no update is lost. The
/// counter exists before the race: on a missing key Spin's SQLite swap is
/// an upsert (see `cas_fails_when_the_key_changed_...`), which would lose
/// first writes, as it does in Spin.
#[test]
fn concurrent_cas_loops_lose_no_update() {
    let state = TempDir::new("cas");
    let hosts: Vec<Arc<TestHost>> = (0..2)
        .map(|_| {
            Arc::new(TestHost {
                host: RunningHost::start(fixture_options(state.path(), &[])).unwrap(),
                state: TempDir::new("unused"),
            })
        })
        .collect();
    let created = hosts[0].post(
        "/probe/kv",
        &[
            ("x-action", "kv"),
            ("x-store", "default"),
            ("x-op", "set"),
            ("x-key", "counter"),
        ],
        "0",
    );
    created.ok();
    const REQUESTS: usize = 12;
    const ROUNDS: u64 = 4;
    let handles: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let app = hosts[i % 2].clone();
            std::thread::spawn(move || {
                wkv(
                    &app,
                    "probe",
                    "default",
                    "cas-add",
                    "counter",
                    &[("x-rounds", &ROUNDS.to_string()), ("x-sleep-ms", "15")],
                    "",
                )
                .ok()["value"]["retries"]
                    .as_u64()
                    .unwrap()
            })
        })
        .collect();
    let retries: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let expected = REQUESTS as u64 * ROUNDS;
    assert_eq!(
        hosts[0]
            .get(
                "/probe/kv",
                &[
                    ("x-action", "kv"),
                    ("x-store", "default"),
                    ("x-op", "get"),
                    ("x-key", "counter")
                ]
            )
            .ok()["value"],
        expected.to_string(),
        "lost updates ({retries} retries)"
    );
    // The loops really raced.
    assert!(retries > 0, "no swap ever failed: the test did not race");
}

#[test]
fn batch_get_set_delete_many() {
    let app = start(&[]);
    wkv(
        &app,
        "probe",
        "default",
        "set-many",
        "",
        &[],
        &json!({ "a": "1", "b": "2", "c": "3" }).to_string(),
    )
    .ok();
    assert_eq!(kv(&app, "default", "get", "b", "").ok()["value"], "2");
    // Like Spin's SQLite store, missing keys are left out.
    assert_eq!(
        wkv(
            &app,
            "probe",
            "default",
            "get-many",
            "",
            &[],
            r#"["a","missing","c"]"#
        )
        .ok()["value"],
        json!([["a", "1"], ["c", "3"]])
    );
    wkv(
        &app,
        "probe",
        "default",
        "delete-many",
        "",
        &[],
        r#"["a","b","missing"]"#,
    )
    .ok();
    assert_eq!(
        wkv(&app, "probe", "default", "keys", "", &[], "").ok()["value"]["keys"],
        json!(["c"])
    );
}
