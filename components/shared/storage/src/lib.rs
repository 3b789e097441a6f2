//! Data access for the shop services.
//!
//! Business logic talks to a [`Db`]: run a statement, run a query, group
//! statements in a [`transaction`]. Two backends implement it: Spin's SQLite
//! ([`SpinSqlite`], the embedded default) and Spin's Postgres
//! ([`SpinPostgres`]); [`ServiceDb`] is whichever of the two a service
//! database's `*_database_url` variable selects. SQL uses `?` placeholders and the subset of SQL both
//! accept (`INSERT ... ON CONFLICT`, `UPDATE ... RETURNING`, window
//! functions); the few statements that differ ask [`Db::dialect`].
//!
//! Concurrency rules that hold on both: a check and the write that depends on
//! it are one conditional statement (`UPDATE ... WHERE <still true>
//! RETURNING`, `INSERT ... ON CONFLICT DO NOTHING RETURNING`), and rows are
//! locked in a fixed order. SQLite serialises writers besides
//! (`BEGIN IMMEDIATE`); Postgres runs them concurrently under READ
//! COMMITTED, where a statement that waited for a row lock re-checks its
//! `WHERE` on the newest row, so the rules are what keeps them correct.
//!
//! Schema changes are versioned SQL files under `migrations/<service>/`,
//! applied exactly once per database by [`migrations::migrate`] and recorded in
//! the `schema_migrations` table.

pub mod counters;
pub mod migrations;
pub mod outbox;
#[cfg(feature = "native")]
pub mod native;
mod service_db;
mod spin_pg;
mod spin_sqlite;
pub mod split;
mod value;

pub use spin_pg::{number_placeholders, SpinPostgres};
pub use service_db::{backend_for, configured_backend, Backend, MigrationSet, ServiceDb};
pub use spin_sqlite::SpinSqlite;

/// The SQL dialect a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}
pub use value::{Row, Rows, Value};

impl Dialect {
    /// The scalar "larger of two values": SQLite's two-argument `MAX(a, b)`,
    /// Postgres' `GREATEST(a, b)` (where `MAX` is only the aggregate).
    pub fn greatest(self) -> &'static str {
        match self {
            Self::Sqlite => "MAX",
            Self::Postgres => "GREATEST",
        }
    }

    /// `LIKE` that ignores ASCII case: SQLite's `LIKE` already does;
    /// Postgres' is case-sensitive, its `ILIKE` is not.
    pub fn like_ignoring_case(self) -> &'static str {
        match self {
            Self::Sqlite => "LIKE",
            Self::Postgres => "ILIKE",
        }
    }
}

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// The component has no grant for this database label.
    AccessDenied(String),
    /// The label is not configured in the runtime.
    NoSuchDatabase(String),
    /// A uniqueness or other constraint rejected the write.
    Constraint(String),
    /// The database stayed locked by another writer for longer than
    /// [`LOCK_WAIT`], or (Postgres) a transaction lost a serialization race
    /// or a deadlock: retry it.
    Busy(String),
    /// The database server cannot be reached (down, restarting, refusing).
    Unavailable(String),
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
            Self::Unavailable(m) => write!(f, "database unavailable: {m}"),
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
    /// Which SQL dialect this backend speaks.
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    /// Run a statement that returns no rows of interest.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError>;
    /// Run a query and return all its rows.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;
}

/// Run `work` inside one write transaction. Any error rolls back.
///
/// On SQLite, `BEGIN IMMEDIATE` takes the write lock up front, so two
/// concurrent transactions queue on the lock instead of both reading and
/// then failing to upgrade. On Postgres it is a plain `BEGIN` (READ
/// COMMITTED): the work itself must follow the rules in the crate docs.
/// Retrying after a deadlock or serialization failure is the caller's
/// choice ([`DbError::Busy`]), since only it knows whether `work` may run twice.
pub fn transaction<T, E>(db: &dyn Db, work: impl FnOnce(&dyn Db) -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    let begin = match db.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    };
    db.execute(begin, &[])?;
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

/// Take the advisory lock `key` for the rest of the caller's transaction,
/// for transactions that must not overlap although they share no row: on
/// Postgres `pg_advisory_xact_lock`; on SQLite nothing, since its write
/// transactions (`BEGIN IMMEDIATE`) already exclude each other.
pub fn advisory_lock(db: &dyn Db, key: i64) -> Result<(), DbError> {
    match db.dialect() {
        Dialect::Sqlite => Ok(()),
        Dialect::Postgres => db.query(&format!("SELECT pg_advisory_xact_lock({key}) IS NULL AS x"), &[]).map(|_| ()),
    }
}

/// How long a statement waits for another session's lock before it gives
/// up with [`DbError::Busy`] (a 503 with `Retry-After`), on both stores: on
/// SQLite it is the busy timeout Spin's connections have (rusqlite's
/// default), which [`polling_for_locks`] keeps; on Postgres it is the
/// session's `lock_timeout`, which `spin_pg` sets to it.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest pause between two tries for a SQLite lock.
const SQLITE_LOCK_POLL_MAX: std::time::Duration = std::time::Duration::from_millis(2);

/// The pause before the next try for a SQLite lock, by how long this
/// statement has waited so far: 0.25, 0.5, 1, then 2 ms while the wait is
/// short; once it has waited 100 ms, every 0.5 ms, and once 500 ms, every
/// 0.2 ms.
///
/// SQLite's lock is not a queue: whoever tries first after it comes free
/// takes it. With one pause for everyone, a writer that has waited long is
/// no likelier to win than one that just arrived, so under a saturated
/// lock a few unlucky requests wait for seconds while the average wait is
/// short. Trying more often the longer it waited gives the long waiters
/// the lock first; there are few of them at any time, so the extra tries
/// cost little.
pub fn lock_poll_pause(waited: std::time::Duration, previous: std::time::Duration) -> std::time::Duration {
    use std::time::Duration;
    if waited >= Duration::from_millis(500) {
        Duration::from_micros(200)
    } else if waited >= Duration::from_millis(100) {
        Duration::from_micros(500)
    } else if previous.is_zero() {
        Duration::from_micros(250)
    } else {
        (previous * 2).min(SQLITE_LOCK_POLL_MAX)
    }
}

/// Run `statement` until it is not refused for a lock, pausing between
/// tries as [`lock_poll_pause`] says, for [`LOCK_WAIT`] in all.
///
/// This replaces SQLite's own busy handler (the one every Spin connection
/// has), which sleeps in growing steps — 1, 2, 5, 10, 15, 20, 25, 25, 25,
/// 50, 50, then 100 ms — so under concurrent checkouts a writer that found
/// the lock taken sleeps on long after it came free: a commit holds it for
/// about a millisecond, the waiter wakes up to 100 ms later. Counted with
/// `strace` under the order benchmark at 8 workers, those sleeps were most
/// of an order's time. The connection's handler is switched off first
/// (`PRAGMA busy_timeout = 0`, see `spin_sqlite`), so a taken lock answers
/// at once. A refused statement did nothing, so trying it again is safe.
pub fn polling_for_locks<T>(mut statement: impl FnMut() -> Result<T, DbError>) -> Result<T, DbError> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::ZERO;
    loop {
        match statement() {
            Err(busy @ DbError::Busy(_)) => {
                pause = lock_poll_pause(started.elapsed(), pause);
                if started.elapsed() + pause >= LOCK_WAIT {
                    return Err(busy);
                }
                std::thread::sleep(pause);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::native::MemDb;
    use super::*;

    #[test]
    fn the_longer_a_statement_waited_for_a_lock_the_more_often_it_tries() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        let mut pause = Duration::ZERO;
        let mut early = Vec::new();
        for _ in 0..5 {
            pause = lock_poll_pause(ms(3), pause);
            early.push(pause.as_micros());
        }
        assert_eq!(early, vec![250, 500, 1000, 2000, 2000], "a short wait backs off");
        assert_eq!(lock_poll_pause(ms(150), ms(2)), Duration::from_micros(500));
        assert_eq!(lock_poll_pause(ms(800), ms(2)), Duration::from_micros(200));
    }

    #[test]
    fn a_statement_refused_for_a_lock_is_tried_again_until_the_lock_is_free() {
        let dir = std::env::temp_dir().join(format!("storage-poll-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wait.db");
        let _ = std::fs::remove_file(&path);
        let holder = MemDb::file(&path);
        holder.execute("PRAGMA journal_mode = WAL", &[]).unwrap();
        holder.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        holder.execute("BEGIN IMMEDIATE", &[]).unwrap();
        let waiter_path = path.clone();
        let waiter = std::thread::spawn(move || {
            let db = MemDb::file(&waiter_path);
            db.execute("PRAGMA busy_timeout = 0", &[]).unwrap();
            let started = std::time::Instant::now();
            let mut tries = 0;
            polling_for_locks(|| {
                tries += 1;
                db.execute("INSERT INTO t VALUES (2)", &[])
            })
            .unwrap();
            (started.elapsed(), tries)
        });
        std::thread::sleep(std::time::Duration::from_millis(60));
        holder.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
        holder.execute("COMMIT", &[]).unwrap();
        let (waited, tries) = waiter.join().unwrap();
        assert!(waited >= std::time::Duration::from_millis(55), "it waited for the lock: {waited:?}");
        assert!(waited < std::time::Duration::from_millis(1000), "and took it soon after it came free: {waited:?}");
        assert!(tries > 1, "refused at first");
        assert_eq!(holder.query("SELECT x FROM t ORDER BY x", &[]).unwrap().len(), 2);
        let other: Result<(), DbError> = polling_for_locks(|| Err(DbError::Other("no".into())));
        assert!(matches!(other, Err(DbError::Other(_))), "other errors are not retried");
        let _ = std::fs::remove_dir_all(&dir);
    }

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
    fn dialect_spellings() {
        assert_eq!(Dialect::Sqlite.greatest(), "MAX");
        assert_eq!(Dialect::Postgres.greatest(), "GREATEST");
        assert_eq!(Dialect::Sqlite.like_ignoring_case(), "LIKE");
        assert_eq!(Dialect::Postgres.like_ignoring_case(), "ILIKE");
    }

    #[test]
    fn classifies_driver_messages() {
        assert!(matches!(DbError::from_message("UNIQUE constraint failed: products.sku".into()), DbError::Constraint(_)));
        assert!(matches!(DbError::from_message("database is locked".into()), DbError::Busy(_)));
        assert!(matches!(DbError::from_message("no such table: x".into()), DbError::Other(_)));
    }
}
