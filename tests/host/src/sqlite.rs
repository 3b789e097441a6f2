//! `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0`.
//!
//! Like Spin's local SQLite, every `open` gets its own rusqlite connection
//! to `<state dir>/sqlite/<label>.db`, with the default rollback journal
//! (no WAL) and rusqlite's default 5 s busy timeout. So `BEGIN IMMEDIATE` …
//! `COMMIT` across several `execute` calls in one instance is a real
//! transaction, and concurrent instances contend through SQLite's file
//! locks exactly as they would under `spin up`. Work runs on tokio's
//! blocking pool because a busy wait can last seconds.
//!
//! `execute` prepares exactly one statement; trailing SQL is an error
//! ("Multiple statements provided"), as in Spin.

use crate::bindings::fermyon::spin::sqlite as v2;
use crate::bindings::spin::sqlite::sqlite as v3;
use crate::state::HostState;
use rusqlite::types::{Value as SqlValue, ValueRef};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wasmtime::component::Resource;

/// The host side of a guest's `connection` resource.
pub struct ConnectionHandle {
    conn: Arc<Mutex<rusqlite::Connection>>,
    label: String,
}

/// `SHOP_TEST_HOST_SQL_TRACE=1`: every `open` and every statement is
/// written to standard error as `sqlite <label> <connection> <µs>: <statement>`
/// (the connection's number, microseconds since the host started, when the
/// statement was handed to a blocking thread), to count what a request
/// costs and how long a transaction holds a lock (README, "The test host").
/// Calls into an embedded key-value store are written the same way, as
/// `kv <label> 0 <µs>: <operation>` (`crate::key_value`).
fn trace(label: &str, connection: usize, what: &str) {
    trace_as("sqlite", label, connection, what)
}

pub(crate) fn trace_as(kind: &str, label: &str, connection: usize, what: &str) {
    static START: std::sync::OnceLock<Option<std::time::Instant>> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| {
        std::env::var_os("SHOP_TEST_HOST_SQL_TRACE").is_some_and(|v| v == "1").then(std::time::Instant::now)
    });
    if let Some(start) = start {
        eprintln!("{kind} {label} {connection} {}: {what}", start.elapsed().as_micros());
    }
}

/// Errors shared by both interface versions (their WIT variants are identical).
enum SqlError {
    NoSuchDatabase,
    AccessDenied,
    InvalidConnection,
    DatabaseFull,
    Io(String),
}

struct SqlResult {
    columns: Vec<String>,
    rows: Vec<Vec<SqlValue>>,
}

/// Path of the database file for `label`.
pub fn database_path(state_dir: &std::path::Path, label: &str) -> PathBuf {
    state_dir.join("sqlite").join(format!("{label}.db"))
}

impl HostState {
    async fn sqlite_open(&mut self, label: String) -> Result<ConnectionHandle, SqlError> {
        if !self.component.sqlite_databases.contains(&label) {
            return Err(SqlError::AccessDenied);
        }
        if !self.app_stores.sqlite_databases.contains(&label) {
            return Err(SqlError::NoSuchDatabase);
        }
        let path = database_path(&self.app_stores.state_dir, &label);
        let conn = tokio::task::spawn_blocking(move || rusqlite::Connection::open(path))
            .await
            .map_err(|e| SqlError::Io(e.to_string()))?
            .map_err(|e| SqlError::Io(e.to_string()))?;
        let conn = Arc::new(Mutex::new(conn));
        trace(&label, Arc::as_ptr(&conn) as usize, "open");
        Ok(ConnectionHandle {
            conn,
            label,
        })
    }

    async fn sqlite_execute(
        &mut self,
        handle: &Resource<ConnectionHandle>,
        statement: String,
        params: Vec<SqlValue>,
    ) -> Result<SqlResult, SqlError> {
        let conn = match self.table.get(handle) {
            Ok(h) => {
                trace(&h.label, Arc::as_ptr(&h.conn) as usize, &statement);
                h.conn.clone()
            }
            Err(_) => return Err(SqlError::InvalidConnection),
        };
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poison| poison.into_inner());
            run_statement(&conn, &statement, params)
        })
        .await
        .map_err(|e| SqlError::Io(e.to_string()))?
    }

    fn sqlite_conn(
        &self,
        handle: &Resource<ConnectionHandle>,
    ) -> wasmtime::Result<Arc<Mutex<rusqlite::Connection>>> {
        Ok(self.table.get(handle)?.conn.clone())
    }
}

fn run_statement(
    conn: &rusqlite::Connection,
    statement: &str,
    params: Vec<SqlValue>,
) -> Result<SqlResult, SqlError> {
    let mut stmt = conn.prepare(statement).map_err(sql_error)?;
    let columns: Vec<String> = stmt
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let value = match row.get_ref(i).map_err(sql_error)? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(i) => SqlValue::Integer(i),
                ValueRef::Real(r) => SqlValue::Real(r),
                ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
            };
            values.push(value);
        }
        out.push(values);
    }
    Ok(SqlResult { columns, rows: out })
}

fn sql_error(e: rusqlite::Error) -> SqlError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
            SqlError::DatabaseFull
        }
        _ => SqlError::Io(e.to_string()),
    }
}

/// Both WIT versions define the same types under different Rust paths; this
/// macro writes the conversions and the resource impl once per version.
macro_rules! impl_sqlite_version {
    ($m:ident) => {
        impl From<SqlError> for $m::Error {
            fn from(e: SqlError) -> Self {
                match e {
                    SqlError::NoSuchDatabase => $m::Error::NoSuchDatabase,
                    SqlError::AccessDenied => $m::Error::AccessDenied,
                    SqlError::InvalidConnection => $m::Error::InvalidConnection,
                    SqlError::DatabaseFull => $m::Error::DatabaseFull,
                    SqlError::Io(msg) => $m::Error::Io(msg),
                }
            }
        }

        impl From<$m::Value> for SqlValue {
            fn from(v: $m::Value) -> Self {
                match v {
                    $m::Value::Integer(i) => SqlValue::Integer(i),
                    $m::Value::Real(r) => SqlValue::Real(r),
                    $m::Value::Text(t) => SqlValue::Text(t),
                    $m::Value::Blob(b) => SqlValue::Blob(b),
                    $m::Value::Null => SqlValue::Null,
                }
            }
        }

        impl From<SqlResult> for $m::QueryResult {
            fn from(r: SqlResult) -> Self {
                $m::QueryResult {
                    columns: r.columns,
                    rows: r
                        .rows
                        .into_iter()
                        .map(|values| $m::RowResult {
                            values: values
                                .into_iter()
                                .map(|v| match v {
                                    SqlValue::Integer(i) => $m::Value::Integer(i),
                                    SqlValue::Real(r) => $m::Value::Real(r),
                                    SqlValue::Text(t) => $m::Value::Text(t),
                                    SqlValue::Blob(b) => $m::Value::Blob(b),
                                    SqlValue::Null => $m::Value::Null,
                                })
                                .collect(),
                        })
                        .collect(),
                }
            }
        }

        impl $m::Host for HostState {}
    };
}

impl_sqlite_version!(v2);
impl_sqlite_version!(v3);

impl v2::HostConnection for HostState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v2::Error>> {
        match self.sqlite_open(database).await {
            Ok(handle) => Ok(Ok(self.table.push(handle)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn execute(
        &mut self,
        self_: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .sqlite_execute(&self_, statement, params)
            .await
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn drop(&mut self, rep: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl v3::HostConnection for HostState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v3::Error>> {
        match self.sqlite_open(database).await {
            Ok(handle) => Ok(Ok(self.table.push(handle)?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn execute(
        &mut self,
        self_: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .sqlite_execute(&self_, statement, params)
            .await
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn last_insert_rowid(
        &mut self,
        self_: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<i64> {
        let conn = self.sqlite_conn(&self_)?;
        let conn = conn.lock().unwrap_or_else(|poison| poison.into_inner());
        Ok(conn.last_insert_rowid())
    }

    async fn changes(&mut self, self_: Resource<ConnectionHandle>) -> wasmtime::Result<u64> {
        let conn = self.sqlite_conn(&self_)?;
        let conn = conn.lock().unwrap_or_else(|poison| poison.into_inner());
        Ok(conn.changes())
    }

    async fn drop(&mut self, rep: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}
