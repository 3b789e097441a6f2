//! The notifications database's schema, embedded from `migrations/notifications/`.

use storage::migrations::Migration;

/// The Spin SQLite label of the notifications database.
pub const DATABASE_LABEL: &str = "notifications";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "deliveries",
    sql: include_str!("../../../../migrations/notifications/0001_deliveries.sql"),
}];

/// Open the notifications database with its schema current.
pub fn open_database() -> Result<storage::SpinSqlite, storage::DbError> {
    storage::SpinSqlite::open_ready(DATABASE_LABEL, MIGRATIONS, &[])
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/notifications");
        storage::migrations::check_against_directory(super::MIGRATIONS, std::path::Path::new(dir)).unwrap();
    }
}
