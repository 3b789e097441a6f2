//! Moves a shop from its embedded stores to the scale-out ones: each
//! service's SQLite database into a Postgres database, and the carts
//! key-value file into Redis (README.md, "Scaling out", "Moving a running
//! shop to Postgres").
//!
//! For each service database it
//! 1. opens the SQLite file read-only, in one read transaction (a
//!    consistent snapshot), and refuses a schema that is not current (start
//!    the app on it once first, so every migration is applied);
//! 2. brings the Postgres database to the current schema with the services'
//!    own migrations and the app's own migration runner, so the app finds
//!    exactly what it would have created itself;
//! 3. refuses a Postgres database that already holds rows (nothing is
//!    overwritten or merged);
//! 4. copies every table, parents before children, in one Postgres
//!    transaction: ids, timestamps, password hashes, refresh-token hashes,
//!    Stripe event ids, outbox ids and the notification cursors all keep
//!    their values, so nothing is sent, charged or applied twice after the
//!    move; identity sequences continue after the highest copied id;
//! 5. checks that each table holds as many rows as it read, and commits.
//!
//! A table that exists on one side only (besides SQLite's full-text index,
//! which Postgres computes itself) stops the copy: it means this tool is
//! older or newer than the databases.
//!
//! The carts copy reads Spin's key-value file (`spin_key_value (store, key,
//! value)`, rows of the `carts` store) and writes each key with `SET NX`,
//! refusing to overwrite a key Redis already has.
//!
//! Stop the app (every instance) before copying: writes made during the
//! copy are not in the snapshot.

use anyhow::{bail, Context, Result};
use rusqlite::OpenFlags;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use storage::{Db, DbError, Dialect, MigrationSet, Rows, Value};
use tokio_postgres::types::{ToSql, Type};

/// A service database: its Spin label (the SQLite file's usual name) and
/// its migrations for both dialects.
#[derive(Clone, Copy)]
pub struct Service {
    /// `catalog`, `users`, `orders`, `notifications`.
    pub label: &'static str,
    /// The Spin variable that points the app at Postgres for it.
    pub url_variable: &'static str,
    pub migrations: &'static MigrationSet,
}

/// Every service database the app has.
pub const SERVICES: [Service; 4] = [
    Service { label: catalog_core::DATABASE_LABEL, url_variable: "catalog_database_url", migrations: &catalog_core::schema::MIGRATION_SET },
    Service { label: users_core::schema::DATABASE_LABEL, url_variable: "users_database_url", migrations: &users_core::schema::MIGRATION_SET },
    Service { label: orders_core::schema::DATABASE_LABEL, url_variable: "orders_database_url", migrations: &orders_core::schema::MIGRATION_SET },
    Service {
        label: notifications_core::schema::DATABASE_LABEL,
        url_variable: "notifications_database_url",
        migrations: &notifications_core::schema::MIGRATION_SET,
    },
];

/// The service with this label.
pub fn service(label: &str) -> Option<Service> {
    SERVICES.into_iter().find(|s| s.label == label)
}

/// What one database copy moved: rows per table, in copy order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub label: &'static str,
    pub tables: Vec<(String, u64)>,
}

/// Tables only the SQLite schema has, derived from other tables: the FTS5
/// index of product names and descriptions (Postgres keeps a generated
/// `tsvector` column instead) and SQLite's own bookkeeping.
fn derived_sqlite_table(name: &str) -> bool {
    name.starts_with("sqlite_") || name == "products_fts" || name.starts_with("products_fts_")
}

/// Bookkeeping rows that describe the SQLite file itself, not the shop's
/// data (the journal-mode marker in `data_loads`).
const SQLITE_ONLY_DATA_LOADS: &str = "storage:";

/// Copies one service's SQLite database at `sqlite` into the (empty)
/// Postgres database at `postgres_url`.
pub fn copy_database(service: Service, sqlite: &Path, postgres_url: &str) -> Result<Copied> {
    if !sqlite.is_file() {
        bail!("{}: no SQLite database at {}", service.label, sqlite.display());
    }
    let source = rusqlite::Connection::open_with_flags(sqlite, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening {}", sqlite.display()))?;
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    // One snapshot for every table.
    source.execute_batch("BEGIN")?;
    let source = storage::native::MemDb(source);
    let status = storage::migrations::status(&source, service.migrations.sqlite)
        .map_err(|e| anyhow::anyhow!("{}: reading the schema of {}: {e}", service.label, sqlite.display()))?;
    if !status.is_current() {
        bail!(
            "{}: {} is at schema version {} (this build expects {}{}); start the app on it once so it \
             migrates, stop it, then copy",
            service.label,
            sqlite.display(),
            status.current,
            status.latest,
            if status.modified.is_empty() { String::new() } else { format!(", and migrations {:?} were edited", status.modified) }
        );
    }

    let target = PgDb::connect(postgres_url).with_context(|| format!("{}: connecting to Postgres", service.label))?;
    storage::migrations::ensure(&target, service.migrations.postgres, &[])
        .map_err(|e| anyhow::anyhow!("{}: migrating the Postgres database: {e}", service.label))?;

    let pg_tables = target.tables()?;
    let sqlite_tables: BTreeSet<String> = source
        .0
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    for t in &sqlite_tables {
        if !derived_sqlite_table(t) && !pg_tables.contains(t) {
            bail!("{}: table {t} exists in SQLite but not in the Postgres schema; this tool does not know where it goes", service.label);
        }
    }
    for t in &pg_tables {
        if !sqlite_tables.contains(t) {
            bail!("{}: table {t} exists in the Postgres schema but not in SQLite", service.label);
        }
    }
    let copied: Vec<&String> = pg_tables.iter().filter(|t| t.as_str() != "schema_migrations").collect();
    for t in &copied {
        let n = target.count(t)?;
        if n > 0 {
            bail!(
                "{}: the Postgres database already holds data ({t}: {n} rows); copy into an empty database \
                 (a new one, or drop and re-create it)",
                service.label
            );
        }
    }
    let order = target.parents_first(&copied)?;

    target.batch("BEGIN")?;
    let result = (|| -> Result<Vec<(String, u64)>> {
        let mut report = Vec::new();
        for table in &order {
            let n = copy_table(&source.0, &target, table).with_context(|| format!("{}: copying {table}", service.label))?;
            report.push((table.clone(), n));
        }
        Ok(report)
    })();
    match result {
        Ok(tables) => {
            target.batch("COMMIT")?;
            Ok(Copied { label: service.label, tables })
        }
        Err(e) => {
            let _ = target.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// A Postgres column the copy writes.
struct Column {
    name: String,
    data_type: String,
    identity: bool,
}

fn copy_table(source: &rusqlite::Connection, target: &PgDb, table: &str) -> Result<u64> {
    let columns = target.columns(table)?;
    let sqlite_columns: BTreeSet<String> = source
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    for c in &columns {
        if !sqlite_columns.contains(&c.name) {
            bail!("column {} is in the Postgres schema but not in SQLite", c.name);
        }
    }
    let written: BTreeSet<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    if let Some(extra) = sqlite_columns.iter().find(|c| !written.contains(c.as_str()) && !target.generated(table, c)) {
        bail!("column {extra} is in SQLite but not in the Postgres schema");
    }
    let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let overriding = if columns.iter().any(|c| c.identity) { " OVERRIDING SYSTEM VALUE" } else { "" };
    let insert = format!("INSERT INTO \"{table}\" ({}){overriding} VALUES ({})", names.join(", "), placeholders.join(", "));
    let filter = if table == "data_loads" { format!(" WHERE name NOT LIKE '{SQLITE_ONLY_DATA_LOADS}%'") } else { String::new() };
    let mut select = source.prepare(&format!("SELECT {} FROM \"{table}\"{filter}", names.join(", ")))?;
    let mut rows = select.query([])?;
    let statement = target.prepare(&insert)?;
    let mut n = 0u64;
    while let Some(row) = rows.next()? {
        let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            let v: rusqlite::types::Value = row.get(i)?;
            values.push(convert(v, &c.data_type).with_context(|| format!("column {}", c.name))?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect();
        target.block(target.client.execute(&statement, &refs))?;
        n += 1;
    }
    for c in columns.iter().filter(|c| c.identity) {
        target.batch(&format!(
            "SELECT setval(pg_get_serial_sequence('\"{table}\"', '{col}'), COALESCE((SELECT MAX(\"{col}\") FROM \"{table}\"), 0) + 1, false)",
            col = c.name
        ))?;
    }
    let stored = target.count(table)?;
    if stored != n {
        bail!("read {n} rows from SQLite but Postgres holds {stored}");
    }
    Ok(n)
}

/// A SQLite value as the Postgres column's type; a value that does not fit
/// stops the copy rather than change.
fn convert(v: rusqlite::types::Value, data_type: &str) -> Result<Box<dyn ToSql + Sync + Send>> {
    use rusqlite::types::Value as V;
    Ok(match data_type {
        "bigint" => Box::new(match v {
            V::Null => None,
            V::Integer(i) => Some(i),
            other => bail!("{other:?} is not an integer"),
        }),
        "integer" => Box::new(match v {
            V::Null => None,
            V::Integer(i) => Some(i32::try_from(i)?),
            other => bail!("{other:?} is not an integer"),
        }),
        "boolean" => Box::new(match v {
            V::Null => None,
            V::Integer(i) => Some(i != 0),
            other => bail!("{other:?} is not a boolean"),
        }),
        "double precision" => Box::new(match v {
            V::Null => None,
            V::Real(r) => Some(r),
            V::Integer(i) => Some(i as f64),
            other => bail!("{other:?} is not a number"),
        }),
        "bytea" => Box::new(match v {
            V::Null => None,
            V::Blob(b) => Some(b),
            V::Text(t) => Some(t.into_bytes()),
            other => bail!("{other:?} is not bytes"),
        }),
        "text" | "character varying" => Box::new(match v {
            V::Null => None,
            V::Text(t) => Some(t),
            V::Integer(i) => Some(i.to_string()),
            other => bail!("{other:?} is not text"),
        }),
        other => bail!("the copy does not handle Postgres type {other}"),
    })
}

/// Copies the `store` rows of a Spin key-value file (the embedded store,
/// e.g. `.spin/carts.db` with store `carts`) into Redis at `redis_url`,
/// key for key. Refuses to overwrite: a key Redis already holds stops the
/// copy before anything is written. Returns the number of keys.
pub fn copy_key_value(file: &Path, store: &str, redis_url: &str) -> Result<usize> {
    if !file.is_file() {
        bail!("no key-value file at {}", file.display());
    }
    let source = rusqlite::Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening {}", file.display()))?;
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    let entries: Vec<(String, Vec<u8>)> = source
        .prepare("SELECT key, value FROM spin_key_value WHERE store = ?1 ORDER BY key")
        .with_context(|| format!("{} is not a Spin key-value file", file.display()))?
        .query_map([store], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut redis = redis::Client::open(redis_url)
        .context("the Redis URL")?
        .get_connection_with_timeout(std::time::Duration::from_secs(10))
        .context("connecting to Redis")?;
    for (key, _) in &entries {
        let exists: bool = redis::cmd("EXISTS").arg(key).query(&mut redis)?;
        if exists {
            bail!("Redis already holds key {key:?}; copy into an empty Redis database");
        }
    }
    for (key, value) in &entries {
        let value = redis_value(key, value);
        let set: Option<String> = redis::cmd("SET").arg(key).arg(value).arg("NX").query(&mut redis)?;
        if set.is_none() {
            bail!("Redis gained key {key:?} during the copy; is the app running?");
        }
    }
    Ok(entries.len())
}

/// A key's value as Redis should hold it: the cart's counters (claims,
/// the guest-cart expiry index) are 8 little-endian bytes in Spin's SQLite
/// store but decimal text for Redis `INCRBY`, which refuses anything else.
fn redis_value(key: &str, value: &[u8]) -> Vec<u8> {
    match <[u8; 8]>::try_from(value) {
        Ok(bytes) if cart_core::store::is_counter_key(key) => i64::from_le_bytes(bytes).to_string().into_bytes(),
        _ => value.to_vec(),
    }
}

/// A blocking Postgres session that is also a [`storage::Db`], so the app's
/// migration runner can run through it.
pub struct PgDb {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl PgDb {
    pub fn connect(url: &str) -> Result<PgDb> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            anyhow::Ok(client)
        })?;
        Ok(PgDb { runtime, client })
    }

    fn block<T>(&self, work: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T> {
        Ok(self.runtime.block_on(work)?)
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.block(self.client.batch_execute(sql))
    }

    fn prepare(&self, sql: &str) -> Result<tokio_postgres::Statement> {
        self.block(self.client.prepare(sql))
    }

    fn count(&self, table: &str) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) FROM \"{table}\"");
        let row = self.block(self.client.query_one(&sql, &[]))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn tables(&self) -> Result<BTreeSet<String>> {
        let rows = self.block(
            self.client.query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                &[],
            ),
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The columns to write, in order: every column but generated ones.
    fn columns(&self, table: &str) -> Result<Vec<Column>> {
        let rows = self.block(
            self.client.query(
                "SELECT column_name::text, data_type::text, is_identity::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER' \
                 ORDER BY ordinal_position",
                &[&table],
            ),
        )?;
        Ok(rows
            .iter()
            .map(|r| Column { name: r.get(0), data_type: r.get(1), identity: r.get::<_, String>(2) == "YES" })
            .collect())
    }

    fn generated(&self, table: &str, column: &str) -> bool {
        self.block(
            self.client.query(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name = $1 AND column_name = $2 AND is_generated <> 'NEVER'",
                &[&table, &column],
            ),
        )
        .map(|rows| !rows.is_empty())
        .unwrap_or(false)
    }

    /// `tables` ordered so each comes after the tables its foreign keys
    /// point at.
    fn parents_first(&self, tables: &[&String]) -> Result<Vec<String>> {
        let rows = self.block(
            self.client.query(
                "SELECT child.relname::text, parent.relname::text FROM pg_constraint k \
                 JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid \
                 WHERE k.contype = 'f' AND child.relnamespace = current_schema()::regnamespace",
                &[],
            ),
        )?;
        let mut parents: BTreeMap<String, BTreeSet<String>> = tables.iter().map(|t| (t.to_string(), BTreeSet::new())).collect();
        for r in rows {
            let (child, parent): (String, String) = (r.get(0), r.get(1));
            if child != parent {
                if let Some(p) = parents.get_mut(&child) {
                    p.insert(parent);
                }
            }
        }
        let mut order: Vec<String> = Vec::new();
        while order.len() < parents.len() {
            let ready: Vec<String> = parents
                .iter()
                .filter(|(t, ps)| !order.contains(t) && ps.iter().all(|p| order.contains(p) || !parents.contains_key(p)))
                .map(|(t, _)| t.clone())
                .collect();
            if ready.is_empty() {
                bail!("the foreign keys between {:?} form a cycle", parents.keys().collect::<Vec<_>>());
            }
            order.extend(ready);
        }
        Ok(order)
    }
}

impl Db for PgDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        self.query(sql, params).map(|_| ())
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let sql = storage::number_placeholders(sql);
        let owned: Vec<Box<dyn ToSql + Sync + Send>> = params
            .iter()
            .map(|v| -> Box<dyn ToSql + Sync + Send> {
                match v {
                    Value::Null => Box::new(None::<String>),
                    Value::Integer(i) => Box::new(*i),
                    Value::Real(r) => Box::new(*r),
                    Value::Text(s) => Box::new(s.clone()),
                    Value::Blob(b) => Box::new(b.clone()),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = self
            .runtime
            .block_on(async {
                let statement = self.client.prepare(&sql).await?;
                let columns: Vec<String> = statement.columns().iter().map(|c| c.name().to_string()).collect();
                let rows = self.client.query(&statement, &refs).await?;
                Ok::<_, tokio_postgres::Error>((columns, rows))
            })
            .map_err(db_error)?;
        let (columns, rows) = rows;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Vec::with_capacity(columns.len());
            for (i, c) in row.columns().iter().enumerate() {
                values.push(column_value(row, i, c.type_()).map_err(|e| DbError::Other(e.to_string()))?);
            }
            out.push(values);
        }
        Ok(Rows::new(columns, out))
    }
}

fn column_value(row: &tokio_postgres::Row, i: usize, ty: &Type) -> Result<Value, tokio_postgres::Error> {
    let v = match *ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Integer),
        Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(|v| Value::Integer(v.into())),
        Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(|v| Value::Integer(v.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(|v| Value::Integer(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
        // Text-like types as text; others (`void` from
        // `pg_advisory_xact_lock`, ...) carry nothing the runner reads.
        _ => row.try_get::<_, Option<String>>(i).ok().flatten().map(Value::Text),
    };
    Ok(v.unwrap_or(Value::Null))
}

/// Errors in the shapes the migration runner reacts to (as the app's
/// Postgres backend classifies them).
fn db_error(e: tokio_postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(d) if d.code().code() == "42P01" => DbError::Other(format!("no such table: {}", d.message())),
        Some(d) if d.code().code().starts_with("23") => DbError::Constraint(d.message().to_string()),
        Some(d) if matches!(d.code().code(), "40001" | "40P01") => DbError::Busy(d.message().to_string()),
        _ => DbError::Other(e.to_string()),
    }
}
