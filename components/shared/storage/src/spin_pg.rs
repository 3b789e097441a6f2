//! The Postgres backend: Spin's `spin:postgres/postgres@4.0.0` interface
//! (spin-sdk `pg4`, Spin >= 3.4, so SpinKube's Spin 3.6 shim runs it).
//!
//! Services write SQL once, with `?` placeholders; this adapter numbers them
//! (`$1`, `$2`, ...) for Postgres. Values map onto the few types the schema
//! uses: integers are `BIGINT` (money in minor units, Unix times, 0/1
//! flags), text is `TEXT`, blobs are `BYTEA`. Postgres computes `SUM` of a
//! `BIGINT` as `NUMERIC`; an integral `NUMERIC` is read back as an integer.
//!
//! Spin keeps a connection pool per address across requests, so `open` is
//! cheap after the first, and a transaction (`BEGIN` ... `COMMIT` sent as
//! statements) stays on one pooled connection for the resource's life.
//!
//! A statement waits for another session's lock at most [`crate::LOCK_WAIT`]
//! (the session's `lock_timeout`), then fails with [`DbError::Busy`], as on
//! SQLite. Postgres' default is to wait forever, so a request queued behind
//! a long transaction (or an operator's `LOCK TABLE`) would hang with its
//! client instead of getting a 503 with `Retry-After`.

use crate::{Db, DbError, Dialect, Rows, Value};
use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError as Error, QueryError};
use std::cell::Cell;

/// A connection to one Postgres database.
pub struct SpinPostgres {
    conn: Connection,
    /// Whether this session's `lock_timeout` is set, which happens before
    /// its first statement that may wait for a lock.
    lock_timeout_set: Cell<bool>,
}

impl SpinPostgres {
    /// Connect to `address` (`postgres://user:pass@host:port/db`; the host
    /// must be in the component's `allowed_outbound_hosts`).
    pub fn open(address: &str) -> Result<Self, DbError> {
        Connection::open(address).map(|conn| Self { conn, lock_timeout_set: Cell::new(false) }).map_err(map_error)
    }

    /// Before the first statement that may wait for a lock: `SET
    /// lock_timeout`, one round trip, so a request that only reads pays
    /// nothing. Every request needs it again: Spin's pool cleans a session
    /// it takes back (deadpool's `RecyclingMethod::Clean`, a `RESET ALL`
    /// among others), so the setting never outlives the request. It is set
    /// outside any transaction (a `BEGIN` is itself such a statement, and
    /// `ServiceDb::connect` has ended a transaction left open), so no
    /// rollback undoes it.
    fn bound_lock_waits(&self, sql: &str) -> Result<(), DbError> {
        if self.lock_timeout_set.get() || !may_wait_for_a_lock(sql) {
            return Ok(());
        }
        self.conn.execute(&set_lock_timeout(), &[]).map_err(map_error)?;
        self.lock_timeout_set.set(true);
        Ok(())
    }
}

/// `SET lock_timeout` to [`crate::LOCK_WAIT`], in milliseconds (a bare
/// integer is read in ms).
fn set_lock_timeout() -> String {
    format!("SET lock_timeout = {}", crate::LOCK_WAIT.as_millis())
}

/// May `sql` wait for a lock another session holds? Everything but a plain
/// read and the end of a transaction: under READ COMMITTED a `SELECT` reads
/// the last committed rows and waits for no writer, unless it locks rows
/// (`FOR UPDATE`, `FOR SHARE`, ...) or takes an advisory lock. A statement
/// of a transaction comes after its `BEGIN`, so a `SELECT ... FOR UPDATE`
/// there finds the timeout set already; the check matters for statements
/// sent on their own. (A plain read does wait behind an `ACCESS EXCLUSIVE`
/// table lock, which DDL takes — the app's own only in a migration's short
/// transaction — and that wait is left unbounded: bounding it would cost
/// every request that only reads the round trip.)
fn may_wait_for_a_lock(sql: &str) -> bool {
    let statement = sql.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_uppercase();
    match statement.split(' ').next().unwrap_or_default() {
        "COMMIT" | "ROLLBACK" => false,
        "SELECT" => ["FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE", "ADVISORY"].iter().any(|lock| statement.contains(lock)),
        _ => true,
    }
}

/// The SQLSTATE classes and codes the services react to.
fn classify(code: &str, text: String) -> DbError {
    match code {
        // serialization_failure, deadlock_detected: the transaction can be
        // retried. lock_not_available: a lock stayed taken for `lock_timeout`
        // (`crate::LOCK_WAIT`), SQLite's "database is locked".
        //
        // Not query_canceled (57014): the app sets no `statement_timeout`, so
        // it means someone outside stopped the statement — an operator's
        // `pg_cancel_backend`, or a statement timeout set on the role or the
        // database — and the app cannot tell whether trying again helps; it
        // stays an error that is looked at.
        "40001" | "40P01" | "55P03" => DbError::Busy(text),
        c if c.starts_with("23") => DbError::Constraint(text),
        // Undefined table: the migration runner's "not yet created" case.
        "42P01" => DbError::Other(format!("no such table: {text}")),
        // Connection and server-availability classes.
        c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => DbError::Unavailable(text),
        _ => DbError::Other(text),
    }
}

fn map_error(e: Error) -> DbError {
    match e {
        Error::ConnectionFailed(m) => DbError::Unavailable(m),
        Error::QueryFailed(QueryError::DbError(d)) => classify(&d.code, format!("{} ({})", d.message, d.code)),
        Error::QueryFailed(QueryError::Text(m)) => {
            // A dropped server connection surfaces as text.
            let lower = m.to_ascii_lowercase();
            if lower.contains("connection") && (lower.contains("closed") || lower.contains("reset") || lower.contains("refused")) {
                DbError::Unavailable(m)
            } else {
                DbError::Other(m)
            }
        }
        Error::BadParameter(m) | Error::ValueConversionFailed(m) | Error::Other(m) => DbError::Other(m),
    }
}

fn to_pg(v: &Value) -> ParameterValue {
    match v {
        Value::Null => ParameterValue::DbNull,
        Value::Integer(i) => ParameterValue::Int64(*i),
        Value::Real(r) => ParameterValue::Floating64(*r),
        Value::Text(s) => ParameterValue::Str(s.clone()),
        Value::Blob(b) => ParameterValue::Binary(b.clone()),
    }
}

fn from_pg(v: DbValue) -> Value {
    match v {
        DbValue::DbNull => Value::Null,
        DbValue::Boolean(b) => Value::Integer(b as i64),
        DbValue::Int8(i) => Value::Integer(i as i64),
        DbValue::Int16(i) => Value::Integer(i as i64),
        DbValue::Int32(i) => Value::Integer(i as i64),
        DbValue::Int64(i) | DbValue::Timestamp(i) => Value::Integer(i),
        DbValue::Floating32(f) => Value::Real(f as f64),
        DbValue::Floating64(f) => Value::Real(f),
        DbValue::Str(s) | DbValue::Uuid(s) => Value::Text(s),
        DbValue::Binary(b) | DbValue::Unsupported(b) => Value::Blob(b),
        DbValue::Jsonb(b) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
        DbValue::Decimal(s) => decimal(&s),
        other => Value::Text(format!("{other:?}")),
    }
}

/// `SUM(bigint)` is `NUMERIC` in Postgres: an integral value is an integer.
fn decimal(s: &str) -> Value {
    let integral = s.strip_suffix(".0").unwrap_or(s);
    match integral.parse::<i64>() {
        Ok(i) => Value::Integer(i),
        Err(_) => s.parse::<f64>().map(Value::Real).unwrap_or_else(|_| Value::Text(s.to_string())),
    }
}

/// Rewrite `?` placeholders as `$1`, `$2`, ... outside string literals,
/// quoted identifiers and comments.
pub fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                while let Some(q) = chars.next() {
                    out.push(q);
                    if q == c {
                        if chars.peek() == Some(&c) {
                            out.push(chars.next().unwrap_or(c));
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for n in chars.by_ref() {
                    out.push(n);
                    if n == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                out.push(c);
                let mut prev = ' ';
                for n in chars.by_ref() {
                    out.push(n);
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            c => out.push(c),
        }
    }
    out
}

impl Db for SpinPostgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        self.bound_lock_waits(sql)?;
        let params: Vec<ParameterValue> = params.iter().map(to_pg).collect();
        self.conn.execute(&number_placeholders(sql), &params).map(|_| ()).map_err(map_error)
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.bound_lock_waits(sql)?;
        let params: Vec<ParameterValue> = params.iter().map(to_pg).collect();
        let result = self.conn.query(&number_placeholders(sql), &params).map_err(map_error)?;
        let columns = result.columns.into_iter().map(|c| c.name).collect();
        let rows = result.rows.into_iter().map(|r| r.into_iter().map(from_pg).collect()).collect();
        Ok(Rows::new(columns, rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_outside_quotes_and_comments() {
        assert_eq!(number_placeholders("SELECT * FROM t WHERE a = ? AND b IN (?, ?)"), "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)");
        assert_eq!(number_placeholders("SELECT '?', \"a?\" FROM t WHERE x = ? -- why?\n AND y = ?"), "SELECT '?', \"a?\" FROM t WHERE x = $1 -- why?\n AND y = $2");
        assert_eq!(number_placeholders("SELECT 'it''s ?' /* ? */, ?"), "SELECT 'it''s ?' /* ? */, $1");
        assert_eq!(number_placeholders("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn classifies_sqlstates() {
        assert!(matches!(classify("23505", "dup".into()), DbError::Constraint(_)));
        assert!(matches!(classify("40001", "ser".into()), DbError::Busy(_)));
        assert!(matches!(classify("40P01", "deadlock".into()), DbError::Busy(_)));
        assert!(matches!(classify("55P03", "canceling statement due to lock timeout".into()), DbError::Busy(_)));
        assert!(matches!(classify("57014", "canceling statement due to user request".into()), DbError::Other(_)));
        assert!(matches!(classify("57P01", "admin shutdown".into()), DbError::Unavailable(_)));
        assert!(matches!(classify("42P01", "x".into()), DbError::Other(m) if m.contains("no such table")));
        assert!(matches!(classify("42601", "syntax".into()), DbError::Other(_)));
    }

    #[test]
    fn the_lock_timeout_is_set_before_what_may_wait_for_a_lock() {
        for waits in [
            "BEGIN",
            "INSERT INTO t (a) VALUES (?)",
            "  update t SET a = 1",
            "DELETE FROM t",
            "WITH x AS (UPDATE t SET a = 1 RETURNING a) SELECT a FROM x",
            "SELECT id FROM orders WHERE id = ? FOR UPDATE",
            "SELECT id FROM t\n WHERE id = ?\n FOR\tNO KEY UPDATE",
            "select id from t for share",
            "SELECT pg_advisory_xact_lock(1)",
            "LOCK TABLE t IN EXCLUSIVE MODE",
            "CREATE TABLE IF NOT EXISTS t (a BIGINT)",
        ] {
            assert!(may_wait_for_a_lock(waits), "{waits}");
        }
        for reads in ["SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations", " select a, b from t where c = ? order by a", "COMMIT", "ROLLBACK"] {
            assert!(!may_wait_for_a_lock(reads), "{reads}");
        }
        assert_eq!(set_lock_timeout(), "SET lock_timeout = 5000");
    }

    #[test]
    fn integral_numerics_are_integers() {
        assert_eq!(decimal("42"), Value::Integer(42));
        assert_eq!(decimal("-7"), Value::Integer(-7));
        assert_eq!(decimal("1.5"), Value::Real(1.5));
    }
}
