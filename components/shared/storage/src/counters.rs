//! Operational counters a service keeps in its own database, for the
//! metrics endpoint: how often something happened and when it last did
//! (a sweep ran, a webhook was refused). One row per counter in the
//! service's `ops_counters` table (`name`, `value`, `updated_at` in Unix
//! seconds), bumped by one upsert that both SQLite and Postgres run
//! atomically, so concurrent bumps from several instances are all counted.

use crate::{Db, DbError, Value};

/// A counter's value and when it was last bumped (Unix seconds); zeros for
/// a counter never bumped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub value: i64,
    pub updated_at: i64,
}

/// Add one to `name`, stamped `now`.
pub fn bump(db: &dyn Db, name: &str, now: i64) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO ops_counters (name, value, updated_at) VALUES (?, 1, ?) \
         ON CONFLICT (name) DO UPDATE SET value = ops_counters.value + 1, updated_at = excluded.updated_at",
        &[name.into(), Value::from(now)],
    )
}

/// The counter `name` (one primary-key look-up).
pub fn read(db: &dyn Db, name: &str) -> Result<Counter, DbError> {
    match db.query("SELECT value, updated_at FROM ops_counters WHERE name = ?", &[name.into()])?.first() {
        Some(row) => Ok(Counter { value: row.int("value")?, updated_at: row.int("updated_at")? }),
        None => Ok(Counter::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::MemDb;

    #[test]
    fn bumps_count_and_stamp() {
        let db = MemDb::new();
        db.execute("CREATE TABLE ops_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL, updated_at INTEGER NOT NULL)", &[])
            .unwrap();
        assert_eq!(read(&db, "sweep").unwrap(), Counter::default());
        bump(&db, "sweep", 100).unwrap();
        bump(&db, "sweep", 160).unwrap();
        bump(&db, "other", 50).unwrap();
        assert_eq!(read(&db, "sweep").unwrap(), Counter { value: 2, updated_at: 160 });
        assert_eq!(read(&db, "other").unwrap(), Counter { value: 1, updated_at: 50 });
    }
}
