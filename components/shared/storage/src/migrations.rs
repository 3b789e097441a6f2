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

use crate::{split, transaction, Db, DbError, Value};

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
/// Where the database refuses (an in-memory or remote database), the mode it
/// keeps is recorded instead and nothing fails.
pub fn ensure(db: &dyn Db, migrations: &[Migration], data: &[DataSet]) -> Result<(), DbError> {
    let latest = latest(migrations);
    let sums: Vec<String> = data.iter().map(|d| checksum(d.sql)).collect();
    let mut marks = vec!["name = ?".to_string()];
    let mut params: Vec<Value> = vec![JOURNAL_MARKER.into()];
    for (d, sum) in data.iter().zip(&sums) {
        marks.push("(name = ? AND checksum = ?)".into());
        params.push(d.name.into());
        params.push(sum.as_str().into());
    }
    let fast = db.query(
        &format!(
            "SELECT (SELECT MAX(version) FROM schema_migrations) AS v, \
             (SELECT COUNT(*) FROM data_loads WHERE {}) AS d",
            marks.join(" OR ")
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
    let journal = db.query("PRAGMA journal_mode = WAL", &[]).ok().and_then(|rows| {
        rows.first().and_then(|r| r.text("journal_mode").ok())
    });
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
    db.execute(CREATE_TABLE, &[])?;
    db.execute(CREATE_DATA_LOADS, &[])?;
    transaction(db, |tx| {
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
        Err(DbError::Other(msg)) if msg.contains("no such table") => db.execute(CREATE_DATA_LOADS, &[])?,
        Err(e) => return Err(e),
    }
    transaction(db, |tx| {
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
