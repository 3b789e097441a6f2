//! Data access for the shop services.
//!
//! Business logic talks to a [`Db`]: run a statement, run a query, group
//! statements in a [`transaction`]. The Spin SQLite adapter ([`SpinSqlite`])
//! is the default backend; a Postgres adapter can implement the same trait
//! without touching any service's logic. SQL uses `?` placeholders and the
//! portable subset of SQL that SQLite and Postgres share.
//!
//! Schema changes are versioned SQL files under `migrations/<service>/`,
//! applied exactly once per database by [`migrations::migrate`] and recorded in
//! the `schema_migrations` table.

pub mod migrations;
mod spin_sqlite;
pub mod split;
mod value;

pub use spin_sqlite::SpinSqlite;
pub use value::{Row, Rows, Value};

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// The component has no grant for this database label.
    AccessDenied(String),
    /// The label is not configured in the runtime.
    NoSuchDatabase(String),
    /// A uniqueness or other constraint rejected the write.
    Constraint(String),
    /// The database stayed locked by another writer for too long.
    Busy(String),
    /// Anything else: I/O, SQL errors (bugs), type mismatches.
    Other(String),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AccessDenied(l) => write!(f, "access to database `{l}` denied"),
            Self::NoSuchDatabase(l) => write!(f, "no database `{l}` configured"),
            Self::Constraint(m) => write!(f, "constraint violated: {m}"),
            Self::Busy(m) => write!(f, "database busy: {m}"),
            Self::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for DbError {}

impl DbError {
    /// Classify a driver error message (SQLite reports constraints and locks as text).
    pub fn from_message(message: String) -> Self {
        let lower = message.to_ascii_lowercase();
        if lower.contains("constraint failed") || lower.contains("constraint violation") {
            Self::Constraint(message)
        } else if lower.contains("database is locked") || lower.contains("database is busy") {
            Self::Busy(message)
        } else {
            Self::Other(message)
        }
    }
}

/// The storage trait. Implementations run one statement per call.
pub trait Db {
    /// Run a statement that returns no rows of interest.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError>;
    /// Run a query and return all its rows.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;
}

/// Run `work` inside one write transaction.
///
/// SQLite's `BEGIN IMMEDIATE` takes the write lock up front, so two concurrent
/// transactions queue on the lock instead of both reading and then failing to
/// upgrade — which is what makes read-check-write sequences (stock
/// reservations, migrations) safe under concurrency. Any error rolls back.
pub fn transaction<T, E>(db: &dyn Db, work: impl FnOnce(&dyn Db) -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    db.execute("BEGIN IMMEDIATE", &[])?;
    match work(db) {
        Ok(v) => match db.execute("COMMIT", &[]) {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = db.execute("ROLLBACK", &[]);
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = db.execute("ROLLBACK", &[]);
            Err(e)
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A rusqlite-backed `Db` so the storage logic is tested against real SQLite.
    use super::*;

    pub struct MemDb(pub rusqlite::Connection);

    impl MemDb {
        pub fn new() -> Self {
            Self(rusqlite::Connection::open_in_memory().unwrap())
        }
        pub fn file(path: &std::path::Path) -> Self {
            Self(rusqlite::Connection::open(path).unwrap())
        }
    }

    fn to_sql(v: &Value) -> rusqlite::types::Value {
        match v {
            Value::Null => rusqlite::types::Value::Null,
            Value::Integer(i) => rusqlite::types::Value::Integer(*i),
            Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
            Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
            Value::Real(r) => rusqlite::types::Value::Real(*r),
        }
    }

    impl Db for MemDb {
        fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError> {
            self.query(sql, params).map(|_| ())
        }
        fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
            let mut stmt = self.0.prepare(sql).map_err(|e| DbError::from_message(e.to_string()))?;
            let columns: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
            let n = columns.len();
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params.iter().map(to_sql)))
                .map_err(|e| DbError::from_message(e.to_string()))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(|e| DbError::from_message(e.to_string()))? {
                let mut vals = Vec::with_capacity(n);
                for i in 0..n {
                    let v: rusqlite::types::Value = row.get(i).unwrap();
                    vals.push(match v {
                        rusqlite::types::Value::Null => Value::Null,
                        rusqlite::types::Value::Integer(i) => Value::Integer(i),
                        rusqlite::types::Value::Text(s) => Value::Text(s),
                        rusqlite::types::Value::Blob(b) => Value::Blob(b),
                        rusqlite::types::Value::Real(r) => Value::Real(r),
                    });
                }
                out.push(vals);
            }
            Ok(Rows::new(columns, out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::MemDb;
    use super::*;

    #[test]
    fn transaction_commits_or_rolls_back() {
        let db = MemDb::new();
        db.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        transaction(&db, |tx| tx.execute("INSERT INTO t VALUES (1)", &[])).unwrap();
        let failed: Result<(), DbError> = transaction(&db, |tx| {
            tx.execute("INSERT INTO t VALUES (2)", &[])?;
            Err(DbError::Other("abort".into()))
        });
        assert!(failed.is_err());
        let rows = db.query("SELECT x FROM t", &[]).unwrap();
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn classifies_driver_messages() {
        assert!(matches!(DbError::from_message("UNIQUE constraint failed: products.sku".into()), DbError::Constraint(_)));
        assert!(matches!(DbError::from_message("database is locked".into()), DbError::Busy(_)));
        assert!(matches!(DbError::from_message("no such table: x".into()), DbError::Other(_)));
    }
}
