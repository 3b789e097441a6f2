//! The transactional outbox every service writes its domain events to, in
//! the same transaction as the change (read by the notifications service).
//!
//! Readers page through an outbox by id past a cursor, so ids must become
//! visible in id order, or a reader racing a commit skips a row for good.
//! SQLite guarantees that (one writer at a time). Postgres does not: two
//! transactions can take identity ids 7 and 8 and commit 8 first. So on
//! Postgres the insert first takes a transaction-level advisory lock, in the
//! same statement: the next writer gets its id only after this transaction
//! has committed or rolled back, and ids commit in order. The price is that
//! transactions writing events to one outbox commit one at a time; the lock
//! is taken last in each transaction (events are recorded after the change),
//! so it is held only for the rest of it.
//!
//! Each event also keeps the W3C trace context of the request that recorded
//! it (`traceparent`, `tracestate`; `http_kit::outbox` passes the current
//! request's), so the email or SMS it causes is sent in that request's
//! trace whichever request or sweep delivers it.

use crate::{Db, DbError, Dialect, Value};

/// The advisory lock key of the outbox (any constant the app uses for nothing else).
const OUTBOX_LOCK: i64 = 0x7368_6f70_6f75_7462; // "shopoutb"

/// The statement appending one event (idempotent per type and key).
pub fn insert_sql(dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => "INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at, traceparent, tracestate) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (event_type, aggregate_id) DO NOTHING"
            .to_string(),
        Dialect::Postgres => format!(
            "INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at, traceparent, tracestate) \
             SELECT ?, ?, ?, ?, ?, ? FROM (SELECT pg_advisory_xact_lock({OUTBOX_LOCK})) AS in_id_order \
             ON CONFLICT (event_type, aggregate_id) DO NOTHING"
        ),
    }
}

/// Take the outbox's lock for the rest of the caller's transaction, before
/// its first statement, for a transaction that must serialise with every
/// transaction that records an event (they all take it, last). On SQLite
/// the write transaction already excludes them: nothing to do.
pub fn lock(db: &dyn Db) -> Result<(), DbError> {
    crate::advisory_lock(db, OUTBOX_LOCK)
}

/// Append a domain event to the outbox, in the caller's transaction, with
/// the trace context it was recorded in.
pub fn record(
    db: &dyn Db,
    event_type: &str,
    aggregate_id: &str,
    payload: &str,
    occurred_at: &str,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> Result<(), DbError> {
    db.execute(
        &insert_sql(db.dialect()),
        &[event_type.into(), aggregate_id.into(), Value::from(payload), occurred_at.into(), traceparent.into(), tracestate.into()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::MemDb;

    /// An outbox of the shape the services' migrations make.
    fn outbox_table() -> MemDb {
        let db = MemDb::new();
        db.execute(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event_type TEXT, aggregate_id TEXT, payload TEXT, occurred_at TEXT, \
             traceparent TEXT, tracestate TEXT, UNIQUE (event_type, aggregate_id))",
            &[],
        )
        .unwrap();
        db
    }

    #[test]
    fn appends_once_per_type_and_key() {
        let db = outbox_table();
        record(&db, "order.paid", "o1", "{}", "t", None, None).unwrap();
        record(&db, "order.paid", "o1", "{}", "t", None, None).unwrap();
        record(&db, "order.shipped", "o1", "{}", "t", None, None).unwrap();
        assert_eq!(db.query("SELECT id FROM outbox", &[]).unwrap().len(), 2);
    }

    #[test]
    fn events_keep_the_trace_they_were_recorded_in() {
        let db = outbox_table();
        record(&db, "user.registered", "u0", "{}", "t", None, None).unwrap();
        record(&db, "user.registered", "u1", "{}", "t", Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), Some("shop=test")).unwrap();
        let rows = db.query("SELECT traceparent, tracestate FROM outbox ORDER BY id", &[]).unwrap();
        assert_eq!(rows.first().unwrap().opt_text("traceparent").unwrap(), None);
        let second = rows.iter().nth(1).unwrap();
        assert_eq!(second.opt_text("traceparent").unwrap().as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert_eq!(second.opt_text("tracestate").unwrap().as_deref(), Some("shop=test"));
    }

    #[test]
    fn postgres_takes_the_ordering_lock_in_the_same_statement() {
        let sql = insert_sql(Dialect::Postgres);
        assert!(sql.contains("pg_advisory_xact_lock") && sql.contains("ON CONFLICT (event_type, aggregate_id) DO NOTHING"));
        assert_eq!(sql.matches('?').count(), 6);
    }
}
