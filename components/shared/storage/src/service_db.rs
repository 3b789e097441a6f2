//! Which backend a service database lives on, chosen by configuration alone.
//!
//! Each service database has one Spin variable, `<service>_database_url`
//! (`catalog_database_url`, `users_database_url`, `orders_database_url`,
//! `notifications_database_url`). Empty (the default) keeps the embedded
//! SQLite database with the service's label; a `postgres://user:pass@host:port/db`
//! URL puts the service on that Postgres database. The Postgres host must
//! be in the component's `allowed_outbound_hosts` (spin.toml grants
//! `postgres://{{ postgres_host }}`).

use crate::migrations::{self, DataSet, Migration};
use crate::{Db, DbError, Dialect, Rows, SpinPostgres, SpinSqlite, Value};

/// One service database on whichever backend its variable selects.
pub enum ServiceDb {
    Sqlite(SpinSqlite),
    Postgres(SpinPostgres),
}

/// The migrations of one service, one list per dialect.
#[derive(Debug, Clone, Copy)]
pub struct MigrationSet {
    pub sqlite: &'static [Migration],
    pub postgres: &'static [Migration],
}

impl MigrationSet {
    /// The list for this dialect.
    pub fn for_dialect(&self, dialect: Dialect) -> &'static [Migration] {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// Where a service database lives, from its `*_database_url` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite database with the service's label.
    Sqlite,
    /// A Postgres database at this URL.
    Postgres(String),
}

/// Read a `*_database_url` value: empty is SQLite, a `postgres://` (or
/// `postgresql://`) URL is Postgres, anything else is a configuration error
/// (never a silent fallback to SQLite).
pub fn backend_for(url: &str) -> Result<Backend, DbError> {
    let url = url.trim();
    if url.is_empty() {
        return Ok(Backend::Sqlite);
    }
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://"));
    match rest {
        Some(r) if !r.is_empty() => Ok(Backend::Postgres(url.to_string())),
        _ => Err(DbError::Other(
            "database URL must be empty (embedded SQLite) or postgres://user:pass@host:port/db".into(),
        )),
    }
}

/// The backend configured by `variable` in this component. A variable the
/// component does not map counts as empty (the embedded SQLite default).
pub fn configured_backend(variable: &str) -> Result<Backend, DbError> {
    match spin_sdk::variables::get(variable) {
        Ok(v) => backend_for(&v),
        Err(spin_sdk::variables::Error::Undefined(_)) => Ok(Backend::Sqlite),
        Err(e) => Err(DbError::Other(format!("variable `{variable}`: {e}"))),
    }
}

impl ServiceDb {
    /// Connect to the database `variable` selects (SQLite label `label` when
    /// it is empty), without touching its schema (a reader of another
    /// service's published tables, such as an outbox).
    pub fn connect(label: &str, variable: &str) -> Result<Self, DbError> {
        match configured_backend(variable)? {
            Backend::Sqlite => SpinSqlite::open(label).map(Self::Sqlite),
            Backend::Postgres(url) => {
                let db = SpinPostgres::open(&url)?;
                // Spin's pool hands a session on without rolling back, so it
                // may still be in a transaction a guest that trapped between
                // BEGIN and COMMIT left open; whatever ran next would join
                // that transaction (and commit or vanish with it) and wait on
                // its locks. No way to ask without a round trip, so end it:
                // a ROLLBACK outside a transaction is only a warning.
                db.execute("ROLLBACK", &[])?;
                Ok(Self::Postgres(db))
            }
        }
    }

    /// Connect and make the database ready for this build: the chosen
    /// dialect's migrations applied and the data sets loaded
    /// ([`migrations::ensure`]). One query when it already is.
    pub fn open(label: &str, variable: &str, migrations: &MigrationSet, data: &[DataSet]) -> Result<Self, DbError> {
        let db = Self::connect(label, variable)?;
        migrations::ensure(&db, migrations.for_dialect(db.dialect()), data)?;
        Ok(db)
    }
}

impl Db for ServiceDb {
    fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(db) => db.dialect(),
            Self::Postgres(db) => db.dialect(),
        }
    }
    fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        match self {
            Self::Sqlite(db) => db.execute(sql, params),
            Self::Postgres(db) => db.execute(sql, params),
        }
    }
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        match self {
            Self::Sqlite(db) => db.query(sql, params),
            Self::Postgres(db) => db.query(sql, params),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_sqlite_and_a_postgres_url_is_postgres() {
        assert_eq!(backend_for("").unwrap(), Backend::Sqlite);
        assert_eq!(backend_for("  ").unwrap(), Backend::Sqlite);
        assert_eq!(
            backend_for(" postgres://shop:pw@db:5432/catalog ").unwrap(),
            Backend::Postgres("postgres://shop:pw@db:5432/catalog".into())
        );
        assert!(matches!(backend_for("postgresql://db/x").unwrap(), Backend::Postgres(_)));
        assert!(backend_for("mysql://db/x").is_err());
        assert!(backend_for("postgres://").is_err());
        assert!(backend_for("catalog").is_err());
    }

    #[test]
    fn picks_the_list_of_the_dialect() {
        const A: &[Migration] = &[Migration { version: 1, name: "a", sql: "" }];
        const B: &[Migration] = &[Migration { version: 1, name: "b", sql: "" }];
        let set = MigrationSet { sqlite: A, postgres: B };
        assert_eq!(set.for_dialect(Dialect::Sqlite)[0].name, "a");
        assert_eq!(set.for_dialect(Dialect::Postgres)[0].name, "b");
    }
}
