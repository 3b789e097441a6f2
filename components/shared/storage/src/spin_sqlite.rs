//! The default backend: Spin's SQLite interface (`fermyon:spin/sqlite@2.0.0`),
//! which every Spin 2+ host provides, backed by a local file, libSQL or Turso
//! according to the runtime config.

use crate::{Db, DbError, Rows, Value};
use spin_sdk::sqlite::{Connection, Error, Value as SqlValue};

/// A connection to one labelled Spin SQLite database.
pub struct SpinSqlite {
    conn: Connection,
    /// Whether this connection was set up for writing (durability level,
    /// busy handler off), which happens before its first write.
    writer: std::cell::Cell<bool>,
}

impl SpinSqlite {
    /// Open the database with this label (it must be granted in `spin.toml`).
    pub fn open(label: &str) -> Result<Self, DbError> {
        Connection::open(label).map(|conn| Self { conn, writer: std::cell::Cell::new(false) }).map_err(|e| map_error(label, e))
    }

    /// Open the database and make it ready for this build: migrations
    /// applied, data sets loaded, WAL on (see [`crate::migrations::ensure`]).
    /// One query when it already is.
    pub fn open_ready(
        label: &str,
        migrations: &[crate::migrations::Migration],
        data: &[crate::migrations::DataSet],
    ) -> Result<Self, DbError> {
        let db = Self::open(label)?;
        crate::migrations::ensure(&db, migrations, data)?;
        Ok(db)
    }
}

/// Does this statement write (so the connection's durability level matters)?
fn is_write(sql: &str) -> bool {
    let head = sql.trim_start().get(..6).unwrap_or("").to_ascii_uppercase();
    matches!(head.as_str(), "BEGIN " | "INSERT" | "UPDATE" | "DELETE")
}

/// The `sqlite_synchronous` variable: `full` (the default, SQLite's and
/// Spin's: every commit is on disk before it returns) or `normal` (in WAL
/// mode a commit returns once it is in the log; the database stays
/// consistent, but an OS crash or power loss may undo the last commits; an
/// app or Spin crash loses nothing). See README, "Durability".
fn synchronous_level() -> Option<&'static str> {
    match spin_sdk::variables::get("sqlite_synchronous").ok()?.trim().to_ascii_lowercase().as_str() {
        "normal" => Some("NORMAL"),
        _ => None,
    }
}

fn map_error(label: &str, e: Error) -> DbError {
    match e {
        Error::AccessDenied => DbError::AccessDenied(label.to_string()),
        Error::NoSuchDatabase => DbError::NoSuchDatabase(label.to_string()),
        Error::InvalidConnection => DbError::Other("invalid connection".into()),
        Error::DatabaseFull => DbError::Other("database full".into()),
        Error::Io(msg) => DbError::from_message(msg),
    }
}

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Integer(i) => SqlValue::Integer(*i),
        Value::Real(r) => SqlValue::Real(*r),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Blob(b) => SqlValue::Blob(b.clone()),
    }
}

fn from_sql(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(i),
        SqlValue::Real(r) => Value::Real(r),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Blob(b) => Value::Blob(b),
    }
}

impl Db for SpinSqlite {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        self.query(sql, params).map(|_| ())
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        if !self.writer.get() && is_write(sql) {
            // Before the first write: the durability level, and SQLite's
            // stepped busy handler off, so waits for a lock poll in short
            // steps from here on (`crate::polling_for_locks`).
            self.writer.set(true);
            if let Some(level) = synchronous_level() {
                self.run(&format!("PRAGMA synchronous = {level}"), &[])?;
            }
            self.run("PRAGMA busy_timeout = 0", &[])?;
        }
        let params: Vec<SqlValue> = params.iter().map(to_sql).collect();
        let result = if self.writer.get() { crate::polling_for_locks(|| self.run(sql, &params)) } else { self.run(sql, &params) }?;
        let rows = result
            .rows
            .into_iter()
            .map(|r| r.values.into_iter().map(from_sql).collect())
            .collect();
        Ok(Rows::new(result.columns, rows))
    }
}

impl SpinSqlite {
    fn run(&self, sql: &str, params: &[SqlValue]) -> Result<spin_sdk::sqlite::QueryResult, DbError> {
        self.conn.execute(sql, params).map_err(|e| map_error("", e))
    }
}
