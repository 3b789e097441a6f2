//! Versioned schema migrations, applied exactly once per database.
//!
//! Each service embeds its `migrations/<service>/NNNN_name.sql` files and
//! calls [`ensure`] when it opens its database. The fast path — schema
//! current, data sets loaded, journal mode set — is a single query, because
//! a Spin request opens a fresh connection and every statement costs a parse
//! and a plan. Otherwise the runner takes SQLite's write lock
//! (`BEGIN IMMEDIATE`), re-reads what is applied (another instance may have
//! just finished), applies the missing versions in order and records each in
//! `schema_migrations`, all in one transaction: a failed migration leaves the
//! database exactly as it was.
//!
//! Applied migrations carry a checksum of their SQL; a file edited after it
//! was applied is reported by [`status`] (and so by `/health`) instead of
//! being silently re-run or ignored.

use crate::{split, transaction, Db, DbError, Dialect, Value};

/// One embedded migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version INTEGER PRIMARY KEY, \
    name TEXT NOT NULL, \
    checksum TEXT NOT NULL, \
    applied_at TEXT NOT NULL)";

/// Bookkeeping of one-off data loads (and of the journal mode, see [`ensure`]).
const CREATE_DATA_LOADS: &str =
    "CREATE TABLE IF NOT EXISTS data_loads (name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)";

/// `schema_migrations` on Postgres: versions are `BIGINT`, since Spin's
/// Postgres interface sends every integer parameter as an `int8`.
const PG_CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
    version BIGINT PRIMARY KEY, \
    name TEXT NOT NULL, \
    checksum TEXT NOT NULL, \
    applied_at TEXT NOT NULL)";

/// The transaction-scoped advisory lock every Postgres migration and data
/// load takes first (an arbitrary constant: "shop" + "migr" in ASCII). It is
/// the Postgres counterpart of SQLite's `BEGIN IMMEDIATE`: several instances
/// starting at once on an empty database queue on it, and the one that gets
/// it second re-reads the bookkeeping and finds the work done. Being
/// transaction-scoped, it is released by COMMIT or ROLLBACK, so a pooled
/// connection never keeps it.
pub const PG_MIGRATION_LOCK: i64 = 0x7368_6f70_6d69_6772;

/// The statements that open a migration (or data-load) transaction on
/// Postgres, after `BEGIN`: the lock, then the bookkeeping tables, created
/// under the lock so two first starts never race on `CREATE TABLE`.
pub fn pg_locked_preamble() -> [String; 3] {
    [
        format!("SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})"),
        PG_CREATE_TABLE.to_string(),
        CREATE_DATA_LOADS.to_string(),
    ]
}

fn pg_lock_and_bookkeeping(tx: &dyn Db) -> Result<(), DbError> {
    for stmt in pg_locked_preamble() {
        tx.execute(&stmt, &[])?;
    }
    Ok(())
}

/// The `data_loads` row that records that the file was switched to WAL.
const JOURNAL_MARKER: &str = "storage:journal_mode";

/// A named, optional data set (such as the demo catalog), loaded at most once.
#[derive(Debug, Clone, Copy)]
pub struct DataSet {
    pub name: &'static str,
    pub sql: &'static str,
}

/// The state of one database's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Highest applied version (0 for an empty database).
    pub current: i64,
    /// Highest version this build knows.
    pub latest: i64,
    /// Applied versions whose SQL changed since they ran.
    pub modified: Vec<i64>,
}

impl SchemaStatus {
    /// Current means every known migration is applied and none was edited.
    pub fn is_current(&self) -> bool {
        self.current == self.latest && self.modified.is_empty()
    }
}

/// A stable checksum of a migration's text (FNV-1a, 64-bit): it detects edits,
/// it is not a security measure.
pub fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.as_bytes() {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn latest(migrations: &[Migration]) -> i64 {
    migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The highest applied version, or `None` when the bookkeeping table does not exist yet.
fn applied_max(db: &dyn Db) -> Result<Option<i64>, DbError> {
    match db.query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations", &[]) {
        Ok(rows) => Ok(Some(rows.first().map(|r| r.int("v")).transpose()?.unwrap_or(0))),
        Err(DbError::Other(msg)) if msg.contains("no such table") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Make the database ready for this build, in one query when it already is:
/// every migration applied, every data set in `data` loaded (at its current
/// checksum), and the file in WAL mode.
///
/// WAL (`PRAGMA journal_mode=WAL`, persistent in the file) lets readers run
/// while a writer commits and makes a commit one append to the log instead
/// of a rewrite of the rollback journal; see README, "Benchmarks". The
/// switch cannot happen inside a transaction, so it runs here, before the
/// migrations, and is recorded in `data_loads` so the fast path can see it.
/// An in-memory database keeps its mode and is recorded as such; a file that
/// could not switch yet (other connections were busy) is tried again on the
/// next call; nothing fails either way.
pub fn ensure(db: &dyn Db, migrations: &[Migration], data: &[DataSet]) -> Result<(), DbError> {
    let latest = latest(migrations);
    let sums: Vec<String> = data.iter().map(|d| checksum(d.sql)).collect();
    // Postgres has no journal mode to switch: only the data sets are marked.
    let sqlite = db.dialect() == Dialect::Sqlite;
    let mut marks: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    if sqlite {
        marks.push("name = ?".into());
        params.push(JOURNAL_MARKER.into());
    }
    for (d, sum) in data.iter().zip(&sums) {
        marks.push("(name = ? AND checksum = ?)".into());
        params.push(d.name.into());
        params.push(sum.as_str().into());
    }
    let where_marks = if marks.is_empty() { "FALSE".to_string() } else { marks.join(" OR ") };
    let fast = db.query(
        &format!(
            "SELECT (SELECT MAX(version) FROM schema_migrations) AS v, \
             (SELECT COUNT(*) FROM data_loads WHERE {where_marks}) AS d"
        ),
        &params,
    );
    match fast {
        Ok(rows) => {
            let row = rows.first().ok_or_else(|| DbError::Other("schema check returned no row".into()))?;
            if row.opt_int("v")?.unwrap_or(0) == latest && row.int("d")? == marks.len() as i64 {
                return Ok(());
            }
        }
        Err(DbError::Other(msg)) if msg.contains("no such table") => {}
        Err(e) => return Err(e),
    }
    // Slow path: first use of this database, or a new build.
    let journal = if sqlite {
        // Switching needs the file to itself: while other connections are
        // busy it answers with the old mode, and the next slow path tries
        // again. An in-memory database answers `memory`, recorded as such.
        db.query("PRAGMA journal_mode = WAL", &[])
            .ok()
            .and_then(|rows| rows.first().and_then(|r| r.text("journal_mode").ok()))
            .filter(|mode| mode == "wal" || mode == "memory")
    } else {
        None
    };
    migrate(db, migrations)?;
    for d in data {
        apply_data_once(db, d.name, d.sql)?;
    }
    if let Some(mode) = journal {
        db.execute(
            "INSERT INTO data_loads (name, checksum, applied_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = excluded.applied_at",
            &[JOURNAL_MARKER.into(), mode.into(), now().into()],
        )?;
    }
    Ok(())
}

/// Bring the database up to the latest migration. Safe to call on every
/// request and from many instances at once.
pub fn migrate(db: &dyn Db, migrations: &[Migration]) -> Result<(), DbError> {
    let latest = latest(migrations);
    if applied_max(db)? == Some(latest) {
        return Ok(());
    }
    let postgres = db.dialect() == Dialect::Postgres;
    if !postgres {
        db.execute(CREATE_TABLE, &[])?;
        db.execute(CREATE_DATA_LOADS, &[])?;
    }
    transaction(db, |tx| {
        if postgres {
            pg_lock_and_bookkeeping(tx)?;
        }
        let current = applied_max(tx)?.unwrap_or(0);
        if current > latest {
            return Err(DbError::Other(format!(
                "database schema is at version {current}, newer than this build's {latest}; refusing to run"
            )));
        }
        let mut pending: Vec<&Migration> = migrations.iter().filter(|m| m.version > current).collect();
        pending.sort_by_key(|m| m.version);
        for m in pending {
            for stmt in split::statements(m.sql) {
                tx.execute(&stmt, &[]).map_err(|e| {
                    DbError::Other(format!("migration {} ({}) failed: {e}", m.version, m.name))
                })?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                &[
                    Value::Integer(m.version),
                    m.name.into(),
                    checksum(m.sql).into(),
                    now().into(),
                ],
            )?;
        }
        Ok(())
    })
}

/// Report the schema state without changing anything (for health checks).
pub fn status(db: &dyn Db, migrations: &[Migration]) -> Result<SchemaStatus, DbError> {
    let latest = latest(migrations);
    if applied_max(db)?.is_none() {
        return Ok(SchemaStatus { current: 0, latest, modified: Vec::new() });
    }
    let rows = db.query("SELECT version, checksum FROM schema_migrations ORDER BY version", &[])?;
    let mut current = 0;
    let mut modified = Vec::new();
    for row in rows.iter() {
        let version = row.int("version")?;
        current = current.max(version);
        let stored = row.text("checksum")?;
        if let Some(m) = migrations.iter().find(|m| m.version == version) {
            if checksum(m.sql) != stored {
                modified.push(version);
            }
        }
    }
    Ok(SchemaStatus { current, latest, modified })
}

/// Apply a named, optional data set (such as the demo catalog) at most once.
/// The SQL itself should also be idempotent (`INSERT ... ON CONFLICT DO NOTHING`), so a data
/// set that was partly loaded by hand is completed rather than duplicated.
pub fn apply_data_once(db: &dyn Db, name: &str, sql: &str) -> Result<bool, DbError> {
    let sum = checksum(sql);
    let done = |db: &dyn Db| -> Result<bool, DbError> {
        Ok(!db
            .query("SELECT 1 AS x FROM data_loads WHERE name = ? AND checksum = ?", &[name.into(), sum.clone().into()])?
            .is_empty())
    };
    // The fast path (already loaded) is one query; the bookkeeping table is
    // created only the first time.
    match done(db) {
        Ok(true) => return Ok(false),
        Ok(false) => {}
        Err(DbError::Other(msg)) if msg.contains("no such table") => {
            if db.dialect() == Dialect::Sqlite {
                db.execute(CREATE_DATA_LOADS, &[])?
            }
        }
        Err(e) => return Err(e),
    }
    transaction(db, |tx| {
        if tx.dialect() == Dialect::Postgres {
            pg_lock_and_bookkeeping(tx)?;
        }
        if done(tx)? {
            return Ok(false);
        }
        for stmt in split::statements(sql) {
            tx.execute(&stmt, &[])?;
        }
        tx.execute(
            "INSERT INTO data_loads (name, checksum, applied_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = excluded.applied_at",
            &[name.into(), sum.clone().into(), now().into()],
        )?;
        Ok(true)
    })
}

fn now() -> String {
    clock::now_rfc3339()
}

/// Check that `migrations` lists exactly the `NNNN_name.sql` files of `dir`,
/// in order. Each service calls this from a unit test, so a migration file
/// that was added but not listed (or listed but not added) fails the build.
pub fn check_against_directory(migrations: &[Migration], dir: &std::path::Path) -> Result<(), String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    let listed: Vec<String> = migrations.iter().map(|m| format!("{:04}_{}.sql", m.version, m.name)).collect();
    if files == listed {
        Ok(())
    } else {
        Err(format!("migrations listed {listed:?} but {} holds {files:?}", dir.display()))
    }
}

/// Check a Postgres migration for SQLite-isms that would make a column or a
/// statement behave differently there: integer columns must be `BIGINT`
/// (Spin's Postgres interface sends every integer as `int8`, and an `int8`
/// parameter does not fit an `int4` placeholder), ids are identities, and
/// FTS5, triggers, `rowid`, `strftime` and `INSERT OR ...` do not exist.
pub fn check_postgres_sql(sql: &str) -> Result<(), String> {
    let code: String = sql.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let upper = code.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).collect();
    for bad in ["INTEGER", "INT", "INT4", "SMALLINT", "SERIAL", "AUTOINCREMENT", "ROWID", "STRFTIME", "FTS5", "TRIGGER", "TIMESTAMPTZ", "REAL"] {
        if words.contains(&bad) {
            return Err(format!("Postgres migration uses `{bad}`"));
        }
    }
    if upper.contains("INSERT OR ") {
        return Err("Postgres migration uses `INSERT OR ...`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::MemDb;

    const V1: Migration = Migration { version: 1, name: "init", sql: "CREATE TABLE a (x INTEGER); CREATE INDEX a_x ON a (x);" };
    const V2: Migration = Migration { version: 2, name: "more", sql: "ALTER TABLE a ADD COLUMN y TEXT;" };
    const BAD: Migration = Migration { version: 3, name: "bad", sql: "CREATE TABLE b (x INTEGER); THIS IS NOT SQL;" };

    #[test]
    fn applies_each_version_once() {
        let db = MemDb::new();
        migrate(&db, &[V1]).unwrap();
        migrate(&db, &[V1]).unwrap();
        migrate(&db, &[V1, V2]).unwrap();
        migrate(&db, &[V1, V2]).unwrap();
        let rows = db.query("SELECT version FROM schema_migrations ORDER BY version", &[]).unwrap();
        let versions: Vec<i64> = rows.iter().map(|r| r.int("version").unwrap()).collect();
        assert_eq!(versions, vec![1, 2]);
        db.execute("INSERT INTO a (x, y) VALUES (1, 'ok')", &[]).unwrap();
        assert!(status(&db, &[V1, V2]).unwrap().is_current());
    }

    #[test]
    fn a_failing_migration_changes_nothing() {
        let db = MemDb::new();
        migrate(&db, &[V1]).unwrap();
        assert!(migrate(&db, &[V1, BAD]).is_err());
        assert!(db.query("SELECT * FROM b", &[]).is_err(), "partial migration must be rolled back");
        let s = status(&db, &[V1, BAD]).unwrap();
        assert_eq!((s.current, s.latest), (1, 3));
        assert!(!s.is_current());
    }

    #[test]
    fn status_of_an_empty_database_and_edited_migrations() {
        let db = MemDb::new();
        assert_eq!(status(&db, &[V1]).unwrap(), SchemaStatus { current: 0, latest: 1, modified: vec![] });
        migrate(&db, &[V1]).unwrap();
        let edited = Migration { sql: "CREATE TABLE a (x INTEGER, z TEXT);", ..V1 };
        assert_eq!(status(&db, &[edited]).unwrap().modified, vec![1]);
    }

    #[test]
    fn refuses_a_database_newer_than_the_build() {
        let db = MemDb::new();
        migrate(&db, &[V1, V2]).unwrap();
        // Force the slow path with a build that knows only V1.
        let e = migrate(&db, &[V1]).unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
    }

    #[test]
    fn concurrent_migrations_apply_once() {
        let dir = std::env::temp_dir().join(format!("migr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        let _ = std::fs::remove_file(&path);
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || migrate(&MemDb::file(&path), &[V1, V2]))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let db = MemDb::file(&path);
        assert_eq!(db.query("SELECT * FROM schema_migrations", &[]).unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ensure_is_one_query_once_ready_and_switches_to_wal() {
        let dir = std::env::temp_dir().join(format!("ensure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        let _ = std::fs::remove_file(&path);
        let seed = DataSet { name: "demo", sql: "INSERT INTO a (x) VALUES (7);" };
        let db = MemDb::file(&path);
        ensure(&db, &[V1], &[seed]).unwrap();
        let mode = db.query("PRAGMA journal_mode", &[]).unwrap().first().unwrap().text("journal_mode").unwrap();
        assert_eq!(mode, "wal");
        // Ready: a second call changes nothing and loads nothing twice.
        ensure(&db, &[V1], &[seed]).unwrap();
        assert_eq!(db.query("SELECT * FROM a", &[]).unwrap().len(), 1);
        // A new migration or an edited data set takes the slow path again.
        ensure(&db, &[V1, V2], &[seed]).unwrap();
        assert!(status(&db, &[V1, V2]).unwrap().is_current());
        let changed = DataSet { name: "demo", sql: "INSERT INTO a (x) VALUES (8);" };
        ensure(&db, &[V1, V2], &[changed]).unwrap();
        assert_eq!(db.query("SELECT * FROM a", &[]).unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Records every statement, answers every query with no rows, and says
    /// it speaks Postgres: shows what the runner sends a Postgres database.
    struct PgScript(std::cell::RefCell<Vec<String>>);

    impl Db for PgScript {
        fn dialect(&self) -> Dialect {
            Dialect::Postgres
        }
        fn execute(&self, sql: &str, _: &[Value]) -> Result<(), DbError> {
            self.0.borrow_mut().push(sql.to_string());
            Ok(())
        }
        fn query(&self, sql: &str, _: &[Value]) -> Result<crate::Rows, DbError> {
            self.0.borrow_mut().push(sql.to_string());
            if sql.contains("FROM schema_migrations") || sql.contains("FROM data_loads") {
                return Err(DbError::Other("no such table: relation does not exist (42P01)".into()));
            }
            Ok(crate::Rows::new(Vec::new(), Vec::new()))
        }
    }

    #[test]
    fn postgres_locks_first_in_the_transaction_and_skips_wal() {
        let db = PgScript(Default::default());
        ensure(&db, &[V1], &[]).unwrap();
        let log = db.0.borrow().clone();
        assert!(!log.iter().any(|s| s.contains("PRAGMA")), "{log:?}");
        assert!(log[0].starts_with("SELECT (SELECT MAX(version)"), "{log:?}");
        assert!(!log[0].contains("data_loads WHERE name"), "no journal marker on Postgres: {log:?}");
        let begin = log.iter().position(|s| s == "BEGIN").expect("a transaction");
        assert!(!log[..begin].iter().any(|s| s.starts_with("CREATE")), "bookkeeping is created under the lock: {log:?}");
        assert_eq!(log[begin + 1], format!("SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})"));
        assert!(log[begin + 2].contains("version BIGINT PRIMARY KEY"), "{log:?}");
        assert!(log[begin + 3].starts_with("CREATE TABLE IF NOT EXISTS data_loads"), "{log:?}");
        assert!(log[begin + 4].starts_with("SELECT COALESCE(MAX(version)"), "re-read under the lock: {log:?}");
        assert_eq!(log.last().unwrap(), "COMMIT");
    }

    #[test]
    fn postgres_sql_check_refuses_sqlite_isms() {
        assert!(check_postgres_sql("CREATE TABLE t (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n BIGINT) -- not INTEGER").is_ok());
        assert!(check_postgres_sql("CREATE TABLE t (n INTEGER)").is_err());
        assert!(check_postgres_sql("CREATE TABLE t (n int)").is_err());
        assert!(check_postgres_sql("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT)").is_err());
        assert!(check_postgres_sql("INSERT OR IGNORE INTO t VALUES (1)").is_err());
    }

    #[test]
    fn data_sets_load_once() {
        let db = MemDb::new();
        migrate(&db, &[V1]).unwrap();
        let seed = "INSERT INTO a (x) VALUES (7);";
        assert!(apply_data_once(&db, "demo", seed).unwrap());
        assert!(!apply_data_once(&db, "demo", seed).unwrap());
        assert_eq!(db.query("SELECT * FROM a", &[]).unwrap().len(), 1);
    }
}
