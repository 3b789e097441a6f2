//! The users database's schema, embedded from `migrations/users/`.

use storage::migrations::Migration;

/// The Spin SQLite label of the users database.
pub const DATABASE_LABEL: &str = "users";

/// Every users migration, in order (a test checks this against the folder).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "users_and_sessions",
        sql: include_str!("../../../../migrations/users/0001_users_and_sessions.sql"),
    },
    Migration { version: 2, name: "outbox", sql: include_str!("../../../../migrations/users/0002_outbox.sql") },
];

/// Open the users database with its schema current.
pub fn open_database() -> Result<storage::SpinSqlite, storage::DbError> {
    storage::SpinSqlite::open_ready(DATABASE_LABEL, MIGRATIONS, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/users");
        storage::migrations::check_against_directory(MIGRATIONS, std::path::Path::new(dir)).unwrap();
    }
}
