//! Outbound Postgres (`spin:postgres/postgres@4.0.0`, spin-sdk 5.2's `pg4`)
//! against a real PostgreSQL server started per test
//! (`shop_test_host::testing::PostgresServer`, Debian package `postgresql`).
//! Without the server binaries these tests fail (they never skip).
//!
//! The guest is `tests/fixtures/pg-probe` (manifest
//! `tests/fixtures/pg-probe/spin.toml`), which runs a JSON script of
//! statements and reports every WIT value and error it saw.

mod common;

use common::{request, TempDir};
use serde_json::{json, Value as Json};
use shop_test_host::testing::{BlockingClient, PostgresServer};
use shop_test_host::{HostOptions, RunningHost};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

const BUILD: &str = "cargo build --release --target wasm32-wasip2 -p fixture-pg-probe";

struct PgApp {
    host: RunningHost,
    _state: TempDir,
}

fn server() -> PostgresServer {
    PostgresServer::start().unwrap_or_else(|e| panic!("starting a throwaway PostgreSQL: {e:#}"))
}

/// The pg-probe app with `postgres_url` = `url` and `postgres_host` (the
/// `pg` component's templated grant) = `host`.
fn app(url: &str, host: &str) -> PgApp {
    let wasm = common::wasm_path("fixture_pg_probe");
    assert!(
        wasm.is_file(),
        "fixture wasm {} is missing: build it first with `{BUILD}`",
        wasm.display()
    );
    let state = TempDir::new("pg-state");
    let host = RunningHost::start(HostOptions {
        manifest: Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pg-probe/spin.toml"),
        runtime_config: None,
        state_dir: state.path().to_path_buf(),
        variables: [
            ("postgres_url".to_string(), url.to_string()),
            ("postgres_host".to_string(), host.to_string()),
        ]
        .into(),
        listen: "127.0.0.1:0".parse().unwrap(),
    })
    .expect("pg-probe app starts");
    PgApp {
        host,
        _state: state,
    }
}

/// A server with database `shop` and the app pointed at it.
fn setup() -> (PostgresServer, String, PgApp) {
    let pg = server();
    let url = pg.create_database("shop").expect("create database");
    let app = app(&url, &pg.host_port());
    (pg, url, app)
}

impl PgApp {
    /// Runs a script on component `component` and returns the probe's report.
    fn run(&self, component: &str, script: Json) -> Json {
        let reply = request(
            self.host.addr(),
            "POST",
            &format!("/{component}/run"),
            &[("content-type", "application/json")],
            script.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 200, "probe failed: {}", reply.body);
        reply.json()
    }

    /// Runs `steps` on one connection (which must open) and returns the
    /// step results.
    fn steps(&self, steps: Json) -> Vec<Json> {
        let report = self.run("pg", json!({ "steps": steps }));
        assert_eq!(report["open"], json!([null]), "open failed: {report}");
        report["steps"].as_array().unwrap().clone()
    }

    /// Like `steps`, but every step must succeed; returns their values.
    fn ok_steps(&self, steps: Json) -> Vec<Json> {
        self.steps(steps)
            .into_iter()
            .map(|r| {
                assert!(r.get("ok").is_some(), "step failed: {r}");
                r["ok"].clone()
            })
            .collect()
    }

    /// The only value of a one-row, one-column query.
    fn scalar(&self, sql: &str) -> Json {
        let result = self.ok_steps(json!([{ "query": sql }])).remove(0);
        let rows = result["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{result}");
        rows[0][0].clone()
    }
}

/// The `db-error` record of a failed step.
fn db_error(step: &Json) -> &Json {
    let e = &step["error"]["query-failed"]["db-error"];
    assert!(e.is_object(), "expected query-failed(db-error), got {step}");
    e
}

fn extra<'a>(db: &'a Json, name: &str) -> Option<&'a str> {
    db["extras"]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str())
}

fn backend_pid(app: &PgApp) -> i64 {
    app.scalar("SELECT pg_backend_pid()")["int32"]
        .as_i64()
        .unwrap()
}

#[test]
fn every_supported_type_round_trips_through_parameters_and_columns() {
    let (_pg, _url, app) = setup();
    let create = "CREATE TABLE every_type (
        id int4 PRIMARY KEY, b bool, i16 int2, i32 int4, i64 int8, f32 float4, f64 float8,
        s text, vc varchar(20), bp char(3), bin bytea, d date, t time, dt timestamp,
        u uuid, j jsonb, n numeric, r4 int4range, r8 int8range, rn numrange,
        a4 int4[], a8 int8[], an numeric[], at text[], iv interval, ch \"char\", tz timestamptz)";
    let values = json!([
        { "int32": 1 }, { "boolean": true }, { "int16": -32768 }, { "int32": 2147483647 },
        { "int64": -9007199254740993i64 }, { "floating32": 1.5 }, { "floating64": -2.25e100 },
        { "str": "grüße 🦀" }, { "str": "varchar" }, { "str": "ab" }, { "binary": [0, 1, 254, 255] },
        { "date": [2024, 2, 29] }, { "time": [23, 59, 58, 123456000] },
        { "datetime": [1999, 12, 31, 23, 59, 59, 999999000] },
        { "uuid": "67E55044-10B1-426F-9247-BB680E5FE0C8" }, { "jsonb": "{\"b\": [1, null], \"a\": \"x\"}" },
        { "decimal": "-1234567890123456789.012345678" },
        { "range-int32": [[1, "exclusive"], [10, "inclusive"]] },
        { "range-int64": [null, [5000000000i64, "exclusive"]] },
        { "range-decimal": [["1.5", "inclusive"], ["2.25", "exclusive"]] },
        { "array-int32": [1, null, -3] }, { "array-int64": [9000000000i64] },
        { "array-decimal": ["1.50", null] }, { "array-str": ["a", null, "ç"] },
        { "interval": { "micros": 3723000004i64, "days": -2, "months": 14 } },
        { "int8": -5 }, { "timestamp": 1700000000 }
    ]);
    let placeholders = (1..=27)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!("INSERT INTO every_type VALUES ({placeholders})");
    let nulls: Vec<Json> = std::iter::once(json!({ "int32": 2 }))
        .chain((0..26).map(|_| json!({ "db-null": null })))
        .collect();
    let all_but_tz =
        "id, b, i16, i32, i64, f32, f64, s, vc, bp, bin, d, t, dt, u, j, n, r4, r8, rn, \
                      a4, a8, an, at, iv, ch";
    let results = app.ok_steps(json!([
        { "execute": create },
        { "execute": insert, "params": values },
        { "execute": insert, "params": nulls },
        { "query": format!("SELECT {all_but_tz} FROM every_type ORDER BY id") },
        { "query": "SELECT extract(epoch FROM tz)::int8 FROM every_type WHERE id = 1" },
        { "query": "SELECT id FROM every_type WHERE false" },
    ]));
    assert_eq!(results[0], json!(0));
    assert_eq!(results[1], json!(1));
    assert_eq!(results[2], json!(1));

    let set = &results[3];
    let types: Vec<&str> = set["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "int32",
            "boolean",
            "int16",
            "int32",
            "int64",
            "floating32",
            "floating64",
            "str",
            "str",
            "str",
            "binary",
            "date",
            "time",
            "datetime",
            "uuid",
            "jsonb",
            "decimal",
            "range-int32",
            "range-int64",
            "range-decimal",
            "array-int32",
            "array-int64",
            "array-decimal",
            "array-str",
            "interval",
            "other(char)"
        ]
    );
    assert_eq!(set["columns"][7]["name"], "s");
    let row = &set["rows"][0];
    let expected = json!([
        { "int32": 1 }, { "boolean": true }, { "int16": -32768 }, { "int32": 2147483647 },
        { "int64": -9007199254740993i64 }, { "floating32": 1.5 }, { "floating64": -2.25e100 },
        { "str": "grüße 🦀" }, { "str": "varchar" }, { "str": "ab " }, { "binary": [0, 1, 254, 255] },
        { "date": [2024, 2, 29] }, { "time": [23, 59, 58, 123456000] },
        { "datetime": [1999, 12, 31, 23, 59, 59, 999999000] },
        { "uuid": "67e55044-10b1-426f-9247-bb680e5fe0c8" },
        { "jsonb": "{\"a\":\"x\",\"b\":[1,null]}" },
        { "decimal": "-1234567890123456789.012345678" },
        // Integer ranges come back normalised to [lower, upper), as Postgres stores them.
        { "range-int32": [[2, "inclusive"], [11, "exclusive"]] },
        { "range-int64": [null, [5000000000i64, "exclusive"]] },
        { "range-decimal": [["1.5", "inclusive"], ["2.25", "exclusive"]] },
        { "array-int32": [1, null, -3] }, { "array-int64": [9000000000i64] },
        { "array-decimal": ["1.50", null] }, { "array-str": ["a", null, "ç"] },
        { "interval": { "micros": 3723000004i64, "days": -2, "months": 14 } },
        // `"char"` has no WIT case: its raw wire bytes (-5 as one byte).
        { "unsupported": [251] }
    ]);
    for (i, (got, want)) in row
        .as_array()
        .unwrap()
        .iter()
        .zip(expected.as_array().unwrap())
        .enumerate()
    {
        assert_eq!(got, want, "column {i} ({})", set["columns"][i]["name"]);
    }
    assert_eq!(row.as_array().unwrap().len(), 26);
    let null_row = &set["rows"][1];
    assert_eq!(null_row[0], json!({ "int32": 2 }));
    for i in 1..26 {
        assert_eq!(null_row[i], json!({ "db-null": null }), "column {i}");
    }
    // `timestamp(s64)` is seconds since the epoch, stored as timestamptz.
    assert_eq!(results[4]["rows"][0][0], json!({ "int64": 1700000000 }));
    // As in Spin, a query without rows has no columns either.
    assert_eq!(results[5], json!({ "columns": [], "rows": [] }));

    // Types without a WIT case: `other(<name>)` and their binary wire bytes.
    let other = app.ok_steps(json!([
        { "query": "SELECT '{\"k\":1}'::json AS j, '10.1.2.3'::inet AS ip, 'x'::name AS n" }
    ]));
    assert_eq!(
        other[0]["columns"],
        json!([
            { "name": "j", "type": "other(json)" },
            { "name": "ip", "type": "other(inet)" },
            { "name": "n", "type": "other(name)" }
        ])
    );
    assert_eq!(
        other[0]["rows"][0],
        json!([
            { "unsupported": b"{\"k\":1}".to_vec() },
            // inet binary form: family, bits, is_cidr, length, address.
            { "unsupported": [2, 32, 0, 4, 10, 1, 2, 3] },
            { "unsupported": [120] }
        ])
    );
}

#[test]
fn type_quirks_match_spin() {
    let (_pg, _url, app) = setup();
    let steps = app.steps(json!([
        { "execute": "CREATE TABLE q (id int4, tz timestamptz, ts timestamp, i2 int2, f8 float8)" },
        // `timestamp(s64)` only fits timestamptz; `datetime` only timestamp.
        { "execute": "INSERT INTO q (id, tz) VALUES (1, $1)", "params": [{ "timestamp": 0 }] },
        { "execute": "INSERT INTO q (id, ts) VALUES (2, $1)", "params": [{ "timestamp": 0 }] },
        // timestamptz columns are typed `datetime`, but their values cannot be read.
        { "query": "SELECT tz FROM q WHERE id = 1" },
        // `int8(s8)` is Rust i8, which only fits Postgres "char".
        { "execute": "INSERT INTO q (id, i2) VALUES (3, $1)", "params": [{ "int8": 1 }] },
        // floating32 does not widen to float8.
        { "execute": "INSERT INTO q (id, f8) VALUES (4, $1)", "params": [{ "floating32": 1.0 }] },
        { "query": "SELECT count(*) FROM q" },
        // An empty range reads as an unbounded one (Spin's quirk).
        { "query": "SELECT 'empty'::int4range, '(,)'::int4range" },
        // Decimals are rust_decimal's (96-bit mantissa, about 28 digits), both ways.
        { "execute": "SELECT $1::numeric", "params": [{ "decimal": "98765432109876543210987654321.5" }] },
        { "query": "SELECT 98765432109876543210987654321.5::numeric" },
    ]));
    assert_eq!(steps[1]["ok"], json!(1));
    let wrong_type = |step: &Json, rust: &str, pg: &str| {
        let text = step["error"]["query-failed"]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("expected query-failed(text): {step}"));
        assert!(
            text.contains("ToSql") && text.contains(rust) && text.contains(pg),
            "{text}"
        );
    };
    wrong_type(&steps[2], "DateTime", "Timestamp");
    let text = steps[3]["error"]["query-failed"]["text"].as_str().unwrap();
    assert!(
        text.contains("error deserializing column 0") && text.contains("timestamptz"),
        "{text}"
    );
    wrong_type(&steps[4], "i8", "Int2");
    wrong_type(&steps[5], "f32", "Float8");
    assert_eq!(steps[6]["ok"]["rows"][0][0], json!({ "int64": 1 }));
    assert_eq!(
        steps[7]["ok"]["rows"][0],
        json!([{ "range-int32": [null, null] }, { "range-int32": [null, null] }])
    );
    let conv = steps[8]["error"]["value-conversion-failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", steps[8]));
    assert!(
        conv.contains("invalid decimal 98765432109876543210987654321.5"),
        "{conv}"
    );
    let text = steps[9]["error"]["query-failed"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", steps[9]));
    assert!(text.contains("error deserializing column 0"), "{text}");
}

#[test]
fn errors_reach_the_guest_as_spin_shapes_them() {
    let (_pg, _url, app) = setup();
    let steps = app.steps(json!([
        { "execute": "CREATE TABLE items (id int4 PRIMARY KEY, name text NOT NULL)" },
        { "execute": "INSERT INTO items VALUES (1, 'a')" },
        { "execute": "INSERT INTO items VALUES ($1, $2)", "params": [{ "int32": 1 }, { "str": "b" }] },
        { "execute": "SELEC 1" },
        { "execute": "SELECT 1; SELECT 2" },
        { "query": "SELECT 1 / $1", "params": [{ "int32": 0 }] },
        { "execute": "INSERT INTO items VALUES (2, NULL)" },
        // Unconvertible parameters: `query` says bad-parameter, `execute`
        // value-conversion-failed (Spin's asymmetry).
        { "query": "SELECT $1::uuid", "params": [{ "uuid": "not-a-uuid" }] },
        { "execute": "SELECT $1::uuid", "params": [{ "uuid": "not-a-uuid" }] },
        { "execute": "SELECT $1::numeric", "params": [{ "decimal": "1.2.3" }] },
        { "query": "SELECT $1::jsonb", "params": [{ "jsonb": "{" }] },
        // Too few parameters: the driver's own check.
        { "query": "SELECT $1::int4, $2::int4", "params": [{ "int32": 1 }] },
        // The connection is still usable after all that (autocommit).
        { "query": "SELECT name FROM items" },
    ]));

    let unique = db_error(&steps[2]);
    assert_eq!(unique["code"], "23505");
    assert_eq!(unique["severity"], "ERROR");
    assert_eq!(
        unique["message"],
        "duplicate key value violates unique constraint \"items_pkey\""
    );
    assert_eq!(unique["detail"], "Key (id)=(1) already exists.");
    assert_eq!(extra(unique, "constraint"), Some("items_pkey"));
    assert_eq!(extra(unique, "table"), Some("items"));
    assert_eq!(extra(unique, "schema"), Some("public"));
    assert!(extra(unique, "routine").is_some(), "{unique}");
    let names: Vec<&str> = unique["extras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["constraint", "routine", "table", "schema", "file", "line"]
    );
    let as_text = unique["as-text"].as_str().unwrap();
    assert!(
        as_text.starts_with("Error { kind: Db, cause: Some(DbError {"),
        "{as_text}"
    );
    assert!(as_text.contains("E23505"), "{as_text}");

    let syntax = db_error(&steps[3]);
    assert_eq!(syntax["code"], "42601");
    assert!(
        syntax["message"].as_str().unwrap().contains("SELEC"),
        "{syntax}"
    );
    assert_eq!(syntax["detail"], Json::Null);
    let multiple = db_error(&steps[4]);
    assert_eq!(multiple["code"], "42601");
    assert_eq!(
        multiple["message"],
        "cannot insert multiple commands into a prepared statement"
    );
    assert_eq!(db_error(&steps[5])["code"], "22012");
    let not_null = db_error(&steps[6]);
    assert_eq!(not_null["code"], "23502");
    assert_eq!(extra(not_null, "column"), Some("name"));

    let bad = steps[7]["error"]["bad-parameter"].as_str().unwrap();
    assert!(bad.contains("invalid UUID not-a-uuid"), "{bad}");
    let conv = steps[8]["error"]["value-conversion-failed"]
        .as_str()
        .unwrap();
    assert!(conv.contains("invalid UUID not-a-uuid"), "{conv}");
    let conv = steps[9]["error"]["value-conversion-failed"]
        .as_str()
        .unwrap();
    assert!(conv.contains("invalid decimal 1.2.3"), "{conv}");
    let bad = steps[10]["error"]["bad-parameter"].as_str().unwrap();
    assert!(bad.contains("invalid JSON {"), "{bad}");
    let count = steps[11]["error"]["query-failed"]["text"].as_str().unwrap();
    assert!(count.contains("Parameters"), "{count}");
    assert_eq!(steps[12]["ok"]["rows"], json!([[{ "str": "a" }]]));
}

#[test]
fn begin_and_rollback_are_one_transaction_on_one_connection() {
    let (pg, url, app) = setup();
    let native = BlockingClient::connect(&url).unwrap();
    native
        .batch_execute("CREATE TABLE t (id int4 PRIMARY KEY)")
        .unwrap();

    let r = app.ok_steps(json!([
        { "execute": "BEGIN" },
        { "execute": "INSERT INTO t VALUES (1), (2)" },
        { "query": "SELECT count(*) FROM t" },
        { "execute": "ROLLBACK" },
        { "query": "SELECT count(*) FROM t" },
        { "execute": "BEGIN" },
        { "execute": "INSERT INTO t VALUES (3)" },
        { "execute": "COMMIT" },
    ]));
    assert_eq!(r[1], json!(2));
    assert_eq!(
        r[2]["rows"][0][0],
        json!({ "int64": 2 }),
        "the insert is visible inside"
    );
    assert_eq!(
        r[4]["rows"][0][0],
        json!({ "int64": 0 }),
        "and gone after ROLLBACK"
    );
    assert_eq!(native.query_i64("SELECT count(*) FROM t").unwrap(), 1);
    assert_eq!(native.query_i64("SELECT max(id)::int8 FROM t").unwrap(), 3);

    // Two opens in one instance are two sessions: the second does not see
    // the first one's uncommitted row until it commits.
    let report = app.run(
        "pg",
        json!({ "connections": 2, "steps": [
            { "query": "SELECT pg_backend_pid()", "conn": 0 },
            { "query": "SELECT pg_backend_pid()", "conn": 1 },
            { "execute": "BEGIN", "conn": 0 },
            { "execute": "INSERT INTO t VALUES (4)", "conn": 0 },
            { "query": "SELECT count(*) FROM t", "conn": 0 },
            { "query": "SELECT count(*) FROM t", "conn": 1 },
            { "execute": "COMMIT", "conn": 0 },
            { "query": "SELECT count(*) FROM t", "conn": 1 },
        ] }),
    );
    assert_eq!(report["open"], json!([null, null]), "{report}");
    let s = &report["steps"];
    assert_ne!(
        s[0]["ok"]["rows"], s[1]["ok"]["rows"],
        "two backends: {report}"
    );
    assert_eq!(s[4]["ok"]["rows"][0][0], json!({ "int64": 2 }));
    assert_eq!(s[5]["ok"]["rows"][0][0], json!({ "int64": 1 }));
    assert_eq!(s[7]["ok"]["rows"][0][0], json!({ "int64": 2 }));
    drop(pg);
}

/// Polls until some session waits for an advisory lock (the guest reached
/// its `pg_advisory_lock` step).
fn wait_for_advisory_waiter(native: &BlockingClient) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while native
        .query_i64("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        .unwrap()
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the guest never waited for the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn concurrent_requests_each_hold_their_own_connection() {
    let (_pg, url, app) = setup();
    let native = BlockingClient::connect(&url).unwrap();
    native
        .batch_execute("CREATE TABLE orders (id int4 PRIMARY KEY); SELECT pg_advisory_lock(7)")
        .unwrap();

    std::thread::scope(|s| {
        // Request A opens a transaction, inserts, then blocks on the lock
        // the test holds, and commits once the test releases it.
        let a = s.spawn(|| {
            app.ok_steps(json!([
                { "execute": "BEGIN" },
                { "execute": "INSERT INTO orders VALUES (1)" },
                { "query": "SELECT pg_backend_pid()" },
                { "execute": "SELECT pg_advisory_lock(7)" },
                { "execute": "SELECT pg_advisory_unlock(7)" },
                { "execute": "COMMIT" },
            ]))
        });
        wait_for_advisory_waiter(&native);

        // Request B, while A's transaction is open: another connection,
        // which does not see A's row.
        let b = app.ok_steps(json!([
            { "query": "SELECT pg_backend_pid()" },
            { "query": "SELECT count(*) FROM orders" },
        ]));
        assert_eq!(
            b[1]["rows"][0][0],
            json!({ "int64": 0 }),
            "A's row is not committed yet"
        );
        assert_eq!(
            native
                .query_i64(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' \
                     AND (state = 'idle in transaction' OR wait_event_type = 'Lock')"
                )
                .unwrap(),
            1,
            "A is still inside its transaction"
        );

        native
            .batch_execute("SELECT pg_advisory_unlock(7)")
            .unwrap();
        let a = a.join().unwrap();
        assert_ne!(
            a[2]["rows"], b[0]["rows"],
            "A and B ran on different backends"
        );
    });

    assert_eq!(
        app.scalar("SELECT count(*) FROM orders"),
        json!({ "int64": 1 })
    );
}

#[test]
fn serialization_failures_and_deadlocks_carry_their_sqlstate() {
    let (_pg, url, app) = setup();
    let native = BlockingClient::connect(&url).unwrap();
    native
        .batch_execute(
            "CREATE TABLE stock (id int4 PRIMARY KEY, qty int4); \
             INSERT INTO stock VALUES (1, 10), (2, 10); SELECT pg_advisory_lock(8)",
        )
        .unwrap();

    // 40001: A's repeatable-read snapshot predates B's committed update.
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            app.steps(json!([
                { "execute": "BEGIN ISOLATION LEVEL REPEATABLE READ" },
                { "query": "SELECT qty FROM stock WHERE id = 1" },
                { "execute": "SELECT pg_advisory_lock(8)" },
                { "execute": "SELECT pg_advisory_unlock(8)" },
                { "execute": "UPDATE stock SET qty = qty - 1 WHERE id = 1" },
                { "execute": "ROLLBACK" },
            ]))
        });
        wait_for_advisory_waiter(&native);
        let b = app.ok_steps(json!([{ "execute": "UPDATE stock SET qty = qty - 1 WHERE id = 1" }]));
        assert_eq!(b[0], json!(1));
        native
            .batch_execute("SELECT pg_advisory_unlock(8)")
            .unwrap();
        let a = a.join().unwrap();
        assert_eq!(a[1]["ok"]["rows"][0][0], json!({ "int32": 10 }));
        let e = db_error(&a[4]);
        assert_eq!(e["code"], "40001", "{e}");
        assert_eq!(
            e["message"],
            "could not serialize access due to concurrent update"
        );
        assert_eq!(a[5]["ok"], json!(0), "ROLLBACK after the failure works");
    });
    assert_eq!(
        native
            .query_i64("SELECT qty::int8 FROM stock WHERE id = 1")
            .unwrap(),
        9
    );

    // 40P01: A and B lock rows 1 and 2 in opposite orders; the server
    // breaks the cycle by failing one of them.
    native.batch_execute("SELECT pg_advisory_lock(9)").unwrap();
    let script = |first: i32, second: i32| {
        json!([
            { "execute": "BEGIN" },
            { "execute": "UPDATE stock SET qty = qty + 1 WHERE id = $1", "params": [{ "int32": first }] },
            { "execute": "SELECT pg_advisory_lock_shared(9)" },
            { "execute": "UPDATE stock SET qty = qty + 1 WHERE id = $1", "params": [{ "int32": second }] },
            { "execute": "ROLLBACK" },
        ])
    };
    std::thread::scope(|s| {
        let a = s.spawn(|| app.steps(script(1, 2)));
        let b = s.spawn(|| app.steps(script(2, 1)));
        let deadline = Instant::now() + Duration::from_secs(30);
        while native
            .query_i64("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            .unwrap()
            < 2
        {
            assert!(
                Instant::now() < deadline,
                "both guests should wait for the lock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        native
            .batch_execute("SELECT pg_advisory_unlock(9)")
            .unwrap();
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        let codes: Vec<Json> = [&a, &b]
            .iter()
            .map(|steps| steps[3]["error"]["query-failed"]["db-error"]["code"].clone())
            .collect();
        assert!(
            codes.contains(&json!("40P01")) && codes.contains(&Json::Null),
            "exactly one deadlock victim: {a:?} {b:?}"
        );
    });
}

#[test]
fn the_pool_outlives_requests_and_recycling_does_not_roll_back() {
    let (_pg, url, app) = setup();
    let native = BlockingClient::connect(&url).unwrap();
    native
        .batch_execute("CREATE TABLE t (id int4 PRIMARY KEY)")
        .unwrap();
    let idle_pool_connections = || {
        native
            .query_i64(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' \
                 AND pid <> pg_backend_pid()",
            )
            .unwrap()
    };

    // Sequential requests reuse one pooled connection (same backend), which
    // stays open between requests, and the session state is reset.
    let first = app.ok_steps(json!([
        { "execute": "SET search_path = nowhere" },
        { "query": "SELECT pg_backend_pid()" },
    ]));
    let pid = first[1]["rows"][0][0]["int32"].as_i64().unwrap();
    assert_eq!(idle_pool_connections(), 1);
    let second = app.ok_steps(json!([
        { "query": "SHOW search_path" },
        { "query": "SELECT pg_backend_pid()" },
    ]));
    assert_eq!(
        second[0]["rows"][0][0],
        json!({ "str": "\"$user\", public" })
    );
    assert_eq!(second[1]["rows"][0][0]["int32"].as_i64().unwrap(), pid);
    assert_eq!(backend_pid(&app), pid);
    assert_eq!(idle_pool_connections(), 1);

    // A guest that leaves its transaction open hands it to the next request
    // that gets the connection (deadpool's Clean recycling, as in Spin).
    app.ok_steps(json!([
        { "execute": "BEGIN" },
        { "execute": "INSERT INTO t VALUES (99)" },
    ]));
    assert_eq!(native.query_i64("SELECT count(*) FROM t").unwrap(), 0);
    let inherited = app.ok_steps(json!([
        { "query": "SELECT count(*) FROM t" },
        { "query": "SELECT pg_backend_pid()" },
        { "execute": "ROLLBACK" },
    ]));
    assert_eq!(inherited[0]["rows"][0][0], json!({ "int64": 1 }));
    assert_eq!(inherited[1]["rows"][0][0]["int32"].as_i64().unwrap(), pid);
    assert_eq!(native.query_i64("SELECT count(*) FROM t").unwrap(), 0);

    // A connection left in a failed transaction cannot be recycled: the
    // next request gets a fresh one.
    let failed = app.steps(json!([
        { "execute": "BEGIN" },
        { "query": "SELECT 1 / 0" },
    ]));
    assert_eq!(db_error(&failed[1])["code"], "22012");
    let fresh = backend_pid(&app);
    assert_ne!(fresh, pid);
    assert_eq!(idle_pool_connections(), 1);
}

#[test]
fn allowed_outbound_hosts_are_enforced_before_connecting() {
    let (pg, url, app) = setup();
    // A listener that must never see a connection.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    let trap_url = format!("postgres://postgres@127.0.0.1:{trap_port}/shop");

    let open = |component: &str, address: &str| -> Json {
        let report = app.run(component, json!({ "address": address, "steps": [] }));
        report["open"][0].clone()
    };
    let denied = |component: &str, address: &str, shown: &str| {
        let error = open(component, address);
        assert_eq!(
            error,
            json!({ "connection-failed": format!("address postgres://{shown} is not permitted") }),
            "{component} opening {address}"
        );
    };

    // The templated grant `postgres://{{ postgres_host }}` covers exactly
    // the server's host and port, in URL and key=value form.
    assert_eq!(open("pg", &url), Json::Null);
    let kv = format!(
        "host=127.0.0.1 port={} user=postgres dbname=shop",
        pg.port()
    );
    assert_eq!(open("pg", &kv), Json::Null);
    denied("pg", &trap_url, &format!("127.0.0.1:{trap_port}"));
    let by_name = format!("postgres://postgres@localhost:{}/shop", pg.port());
    denied("pg", &by_name, &format!("localhost:{}", pg.port()));
    // Every host of a multi-host address must be allowed.
    let multi = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{trap_port}/shop",
        pg.port()
    );
    denied("pg", &multi, &format!("127.0.0.1:{trap_port}"));
    // No grant at all.
    denied("ungranted", &url, &pg.host_port());
    // `postgres://127.0.0.1` means port 5432 only.
    denied("default-port", &url, &pg.host_port());
    let on_5432 = open("default-port", "postgres://postgres@127.0.0.1/shop");
    assert!(
        !on_5432.to_string().contains("not permitted"),
        "port 5432 is allowed there: {on_5432}"
    );

    // Addresses Spin refuses for other reasons.
    assert_eq!(
        open("pg", "host=/tmp user=postgres"),
        json!({ "connection-failed": "Unix sockets are not supported on WebAssembly" })
    );
    let unparseable = open("pg", "postgres://postgres@127.0.0.1:notaport/shop");
    assert!(
        unparseable["connection-failed"]
            .as_str()
            .is_some_and(|m| m.contains("invalid")),
        "{unparseable}"
    );
    let v6 = open("pg", &format!("postgres://postgres@[::1]:{trap_port}/shop"));
    assert!(v6.get("other").is_some(), "{v6}");

    std::thread::sleep(Duration::from_millis(100));
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a denied address was connected to"
    );
}

#[test]
fn connection_failures_are_connection_failed() {
    let pg = server();
    // Allowed, but nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let closed_host = format!("127.0.0.1:{closed_port}");
    let app_closed = app(
        &format!("postgres://postgres@{closed_host}/shop"),
        &closed_host,
    );
    let report = app_closed.run("pg", json!({ "steps": [{ "query": "SELECT 1" }] }));
    let refused = report["open"][0]["connection-failed"]
        .as_str()
        .unwrap_or_default();
    assert!(
        refused
            .starts_with("Error occurred while creating a new object: error connecting to server")
            && refused.contains("Connection refused"),
        "{report}"
    );
    assert!(report["steps"][0].get("skipped").is_some(), "{report}");

    let app = app(&pg.url(), &pg.host_port());
    let missing_db = app.run(
        "pg",
        json!({ "address": pg.database_url("nope"), "steps": [] }),
    );
    let message = missing_db["open"][0]["connection-failed"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("database \"nope\" does not exist"),
        "{missing_db}"
    );
    // No TLS on the server: `sslmode=require` fails as it would in Spin.
    let tls = app.run(
        "pg",
        json!({ "address": format!("{}?sslmode=require", pg.url()), "steps": [] }),
    );
    let message = tls["open"][0]["connection-failed"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("TLS"), "{tls}");
    // The default (`prefer`) and `disable` connect in plain text.
    for mode in ["prefer", "disable"] {
        let report = app.run(
            "pg",
            json!({ "address": format!("{}?sslmode={mode}", pg.url()), "steps": [{ "query": "SELECT 1" }] }),
        );
        assert_eq!(report["open"], json!([null]), "{report}");
        assert_eq!(report["steps"][0]["ok"]["rows"], json!([[{ "int32": 1 }]]));
    }
}

#[test]
fn the_server_helper_gives_isolated_databases() {
    let pg = server();
    let a = pg.create_database("a").unwrap();
    let b = pg.create_database("b_2").unwrap();
    assert_eq!(a, format!("postgres://postgres@127.0.0.1:{}/a", pg.port()));
    BlockingClient::connect(&a)
        .unwrap()
        .batch_execute("CREATE TABLE only_in_a (x int)")
        .unwrap();
    let b_client = BlockingClient::connect(&b).unwrap();
    assert!(b_client
        .query_i64("SELECT count(*) FROM only_in_a")
        .is_err());
    assert!(pg.create_database("Bad-Name").is_err());
    let settings = pg
        .client()
        .unwrap()
        .query_i64(
            "SELECT (current_setting('fsync') = 'off' \
             AND current_setting('TimeZone') = 'UTC')::int4::int8",
        )
        .unwrap();
    assert_eq!(settings, 1, "fsync off, time zone UTC");
    let log = pg.log();
    assert!(log.contains("ready to accept connections"), "{log}");
    let addr = pg.host_port();
    drop(pg);
    // Dropping stops the server: its port refuses connections.
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the server still accepts connections after drop"
    );
}
