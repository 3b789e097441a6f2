//! The default backend: Spin's SQLite interface (`fermyon:spin/sqlite@2.0.0`),
//! which every Spin 2+ host provides, backed by a local file, libSQL or Turso
//! according to the runtime config.

use crate::{Db, DbError, Rows, Value};
use spin_sdk::sqlite::{Connection, Error, Value as SqlValue};

/// A connection to one labelled Spin SQLite database.
pub struct SpinSqlite {
    conn: Connection,
}

impl SpinSqlite {
    /// Open the database with this label (it must be granted in `spin.toml`).
    pub fn open(label: &str) -> Result<Self, DbError> {
        Connection::open(label).map(|conn| Self { conn }).map_err(|e| map_error(label, e))
    }

    /// Open the database and bring its schema up to date (see `migrations`).
    pub fn open_migrated(label: &str, migrations: &[crate::migrations::Migration]) -> Result<Self, DbError> {
        let db = Self::open(label)?;
        crate::migrations::migrate(&db, migrations)?;
        Ok(db)
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
        let params: Vec<SqlValue> = params.iter().map(to_sql).collect();
        let result = self.conn.execute(sql, &params).map_err(|e| map_error("", e))?;
        let rows = result
            .rows
            .into_iter()
            .map(|r| r.values.into_iter().map(from_sql).collect())
            .collect();
        Ok(Rows::new(result.columns, rows))
    }
}
