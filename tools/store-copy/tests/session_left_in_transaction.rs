//! What the app's Postgres open relies on, on a real server through this
//! crate's native `storage::Db`: a pooled session handed on inside a
//! transaction that a trapped guest left open (Spin's pool does not roll
//! back) is ended by the `ROLLBACK` that `storage::ServiceDb::connect`
//! sends first, whether that transaction is healthy or failed, and a
//! `ROLLBACK` in a clean session is harmless.

use shop_store_copy::PgDb;
use shop_test_host::testing::PostgresServer;
use storage::{Db, Value};

#[test]
fn a_session_left_in_a_transaction_is_rolled_back_before_use() {
    let pg = PostgresServer::start().expect("Postgres server (apt-get install postgresql)");
    let url = pg.create_database("users").unwrap();
    let set = users_core::schema::MIGRATION_SET.postgres;
    let db = PgDb::connect(&url).unwrap();
    storage::migrations::ensure(&db, set, &[]).unwrap();
    let count = |db: &PgDb| db.query("SELECT COUNT(*) AS n FROM login_failures", &[]).unwrap().first().unwrap().int("n").unwrap();

    // A guest began, wrote, and trapped before COMMIT.
    db.execute("BEGIN", &[]).unwrap();
    db.execute(
        "INSERT INTO login_failures (key, window_started_at, failures) VALUES (?, ?, ?)",
        &[Value::from("email:left@example.test"), Value::from(1_i64), Value::from(1_i64)],
    )
    .unwrap();
    db.execute("ROLLBACK", &[]).unwrap();
    storage::migrations::ensure(&db, set, &[]).unwrap();
    assert_eq!(count(&db), 0, "the half-done work was rolled back, not joined");
    // And the session is out of any transaction: this write commits at once.
    db.execute(
        "INSERT INTO login_failures (key, window_started_at, failures) VALUES (?, ?, ?)",
        &[Value::from("email:mine@example.test"), Value::from(1_i64), Value::from(1_i64)],
    )
    .unwrap();
    let other = PgDb::connect(&url).unwrap();
    assert_eq!(count(&other), 1, "visible to another session");

    // A transaction that failed (every statement refused until ROLLBACK).
    db.execute("BEGIN", &[]).unwrap();
    assert!(db.execute("SELECT * FROM no_such_table", &[]).is_err());
    assert!(storage::migrations::ensure(&db, set, &[]).is_err(), "a failed transaction refuses everything");
    db.execute("ROLLBACK", &[]).unwrap();
    db.execute("ROLLBACK", &[]).unwrap();
    storage::migrations::ensure(&db, set, &[]).unwrap();
    assert_eq!(count(&db), 1);
}
