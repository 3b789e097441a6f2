//! A rusqlite-backed [`Db`] for native unit tests of services' storage code,
//! so their SQL runs against real SQLite without a Spin host. Not used in
//! the wasm components (feature `native`).

use crate::{Db, DbError, Dialect, Rows, Value};

/// An SQLite connection, in memory or on a file.
pub struct MemDb(pub rusqlite::Connection);

impl MemDb {
    pub fn new() -> Self {
        Self(rusqlite::Connection::open_in_memory().expect("open sqlite"))
    }
    pub fn file(path: &std::path::Path) -> Self {
        Self(rusqlite::Connection::open(path).expect("open sqlite"))
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

/// A [`Db`] that speaks a chosen dialect, records every statement with its
/// parameters and answers every query with no rows: shows what a service
/// sends a backend it cannot run natively (Postgres).
pub struct Recorder {
    pub dialect: Dialect,
    pub log: std::cell::RefCell<Vec<(String, Vec<Value>)>>,
}

impl Recorder {
    pub fn postgres() -> Self {
        Self { dialect: Dialect::Postgres, log: Default::default() }
    }
    /// Every statement sent, in order.
    pub fn statements(&self) -> Vec<String> {
        self.log.borrow().iter().map(|(s, _)| s.clone()).collect()
    }
}

impl Db for Recorder {
    fn dialect(&self) -> Dialect {
        self.dialect
    }
    fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        self.log.borrow_mut().push((sql.to_string(), params.to_vec()));
        Ok(())
    }
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.execute(sql, params)?;
        Ok(Rows::new(Vec::new(), Vec::new()))
    }
}
