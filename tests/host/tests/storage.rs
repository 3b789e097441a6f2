//! Key-value and SQLite host interfaces: persistence, per-label isolation,
//! grants, transactions and Spin's one-statement-per-execute rule.

mod common;

use common::{fixture_options, start, TempDir, TestHost};
use serde_json::{json, Value};
use shop_test_host::RunningHost;

fn kv(
    app: &TestHost,
    component: &str,
    store: &str,
    op: &str,
    key: &str,
    value: &str,
) -> common::Reply {
    app.post(
        &format!("/{component}/kv"),
        &[
            ("x-action", "kv"),
            ("x-store", store),
            ("x-op", op),
            ("x-key", key),
        ],
        value,
    )
}

fn sql(app: &TestHost, component: &str, db: &str, steps: Value) -> common::Reply {
    app.post(
        &format!("/{component}/sql"),
        &[("x-action", "sql"), ("x-db", db)],
        steps.to_string(),
    )
}

#[test]
fn key_value_round_trip_and_persistence_across_restarts() {
    let state = TempDir::new("kv");
    {
        let host = RunningHost::start(fixture_options(state.path(), &[])).unwrap();
        let app = TestHost {
            host,
            state: TempDir::new("unused"),
        };
        assert_eq!(
            kv(&app, "probe", "default", "set", "k1", "v1").ok()["value"],
            Value::Null
        );
        assert_eq!(
            kv(&app, "probe", "carts", "set", "cart-1", "apples").ok()["value"],
            Value::Null
        );
        assert_eq!(
            kv(&app, "probe", "default", "get", "k1", "").ok()["value"],
            "v1"
        );
        assert_eq!(
            kv(&app, "probe", "default", "exists", "k1", "").ok()["value"],
            true
        );
        assert_eq!(
            kv(&app, "probe", "default", "exists", "nope", "").ok()["value"],
            false
        );
        // Stores are separate per label.
        assert_eq!(
            kv(&app, "probe", "default", "get", "cart-1", "").ok()["value"],
            Value::Null
        );
        assert_eq!(
            kv(&app, "probe", "carts", "keys", "", "").ok()["value"],
            json!(["cart-1"])
        );
    }
    // A new host on the same state dir sees the data.
    let host = RunningHost::start(fixture_options(state.path(), &[])).unwrap();
    let app = TestHost {
        host,
        state: TempDir::new("unused"),
    };
    assert_eq!(
        kv(&app, "probe", "carts", "get", "cart-1", "").ok()["value"],
        "apples"
    );
    kv(&app, "probe", "default", "delete", "k1", "").ok();
    assert_eq!(
        kv(&app, "probe", "default", "get", "k1", "").ok()["value"],
        Value::Null
    );
    assert!(state.path().join("key_value/carts.db").is_file());
}

#[test]
fn key_value_without_grant_is_access_denied() {
    let app = start(&[]);
    // `limited` has no key_value_stores at all.
    assert!(kv(&app, "limited", "default", "get", "k", "")
        .error()
        .contains("AccessDenied"));
    // `probe` is granted default and carts, but not this declared-nowhere label.
    assert!(kv(&app, "probe", "sessions", "get", "k", "")
        .error()
        .contains("AccessDenied"));
}

#[test]
fn sqlite_databases_are_separate_per_label() {
    let app = start(&[]);
    let create = |db: &str, value: &str| {
        sql(
            &app,
            "probe",
            db,
            json!([
                { "sql": "CREATE TABLE IF NOT EXISTS t (v TEXT)" },
                { "sql": "INSERT INTO t (v) VALUES (?)", "params": [value] },
            ]),
        )
        .ok()
    };
    create("default", "in-default");
    create("catalog", "in-catalog");
    let read = |db: &str| {
        sql(&app, "probe", db, json!([{ "sql": "SELECT v FROM t" }])).ok()["results"][0]["rows"]
            .clone()
    };
    assert_eq!(read("default"), json!([["in-default"]]));
    assert_eq!(read("catalog"), json!([["in-catalog"]]));
    assert!(app.state.path().join("sqlite/default.db").is_file());
    assert!(app.state.path().join("sqlite/catalog.db").is_file());
}

#[test]
fn sqlite_values_rowid_and_changes() {
    let app = start(&[]);
    let body = sql(
        &app,
        "probe",
        "default",
        json!([
            { "sql": "CREATE TABLE v (i INTEGER, r REAL, t TEXT, n)" },
            { "sql": "INSERT INTO v VALUES (?, ?, ?, ?)", "params": [42, 1.5, "x", null] },
            { "sql": "INSERT INTO v VALUES (7, 0.25, 'y', NULL)" },
            { "sql": "UPDATE v SET t = 'z'" },
            { "sql": "SELECT i, r, t, n FROM v ORDER BY i" },
        ]),
    )
    .ok();
    let results = &body["results"];
    assert_eq!(results[2]["last_insert_rowid"], 2);
    assert_eq!(results[3]["changes"], 2);
    assert_eq!(results[4]["columns"], json!(["i", "r", "t", "n"]));
    assert_eq!(
        results[4]["rows"],
        json!([[7, 0.25, "z", null], [42, 1.5, "z", null]])
    );
}

#[test]
fn legacy_sqlite_interface_works_too() {
    let app = start(&[]);
    let reply = app.post(
        "/probe/sql",
        &[("x-action", "sql"), ("x-db", "default"), ("x-sqlite", "2")],
        json!([
            { "sql": "CREATE TABLE l (v)" },
            { "sql": "INSERT INTO l VALUES (?)", "params": ["legacy"] },
            { "sql": "SELECT v FROM l" },
        ])
        .to_string(),
    );
    assert_eq!(reply.ok()["results"][2]["rows"], json!([["legacy"]]));
}

#[test]
fn execute_runs_exactly_one_statement() {
    let app = start(&[]);
    let error = sql(
        &app,
        "probe",
        "default",
        json!([{ "sql": "SELECT 1; SELECT 2" }]),
    )
    .error();
    assert!(error.contains("Multiple statements"), "{error}");
}

#[test]
fn a_transaction_spans_several_executes() {
    let app = start(&[]);
    sql(
        &app,
        "probe",
        "default",
        json!([{ "sql": "CREATE TABLE tx (v INTEGER)" }]),
    )
    .ok();
    // Rolled back: nothing stays.
    let body = sql(
        &app,
        "probe",
        "default",
        json!([
            { "sql": "BEGIN IMMEDIATE" },
            { "sql": "INSERT INTO tx VALUES (1)" },
            { "sql": "SELECT count(*) FROM tx" },
            { "sql": "ROLLBACK" },
            { "sql": "SELECT count(*) FROM tx" },
        ]),
    )
    .ok();
    assert_eq!(
        body["results"][2]["rows"],
        json!([[1]]),
        "the insert is visible inside the transaction"
    );
    assert_eq!(
        body["results"][4]["rows"],
        json!([[0]]),
        "rollback undid it"
    );
    // An instance that ends with an open transaction does not commit it.
    sql(
        &app,
        "probe",
        "default",
        json!([{ "sql": "BEGIN" }, { "sql": "INSERT INTO tx VALUES (2)" }]),
    )
    .ok();
    let rows = sql(
        &app,
        "probe",
        "default",
        json!([{ "sql": "SELECT count(*) FROM tx" }]),
    )
    .ok();
    assert_eq!(rows["results"][0]["rows"], json!([[0]]));
}

#[test]
fn concurrent_transactions_contend_through_file_locks() {
    let app = std::sync::Arc::new(start(&[]));
    sql(
        &app,
        "probe",
        "default",
        json!([{ "sql": "CREATE TABLE c (who TEXT, seen INTEGER)" }]),
    )
    .ok();
    // Each request: take the write lock, read the count, hold the lock a
    // while, then write count+1. Without real serialisation both would read
    // 0 and write 1.
    let steps = |who: &str| {
        json!([
            { "sql": "BEGIN IMMEDIATE" },
            { "sql": "SELECT count(*) FROM c" },
            { "sleep_ms": 400 },
            { "sql": "INSERT INTO c SELECT ?, count(*) + 1 FROM c", "params": [who] },
            { "sql": "COMMIT" },
        ])
    };
    let handles: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|who| {
            let app = app.clone();
            let body = steps(who);
            std::thread::spawn(move || sql(&app, "probe", "default", body).ok())
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let rows = sql(
        &app,
        "probe",
        "default",
        json!([{ "sql": "SELECT seen FROM c ORDER BY seen" }]),
    )
    .ok();
    assert_eq!(rows["results"][0]["rows"], json!([[1], [2]]));
}

#[test]
fn sqlite_without_grant_is_access_denied() {
    let app = start(&[]);
    assert!(sql(&app, "limited", "default", json!([]))
        .error()
        .contains("AccessDenied"));
    assert!(sql(&app, "probe", "orders", json!([]))
        .error()
        .contains("AccessDenied"));
}
