//! The checkout database's schema, embedded from `migrations/orders/`.

use storage::migrations::Migration;

/// The Spin SQLite label of the checkout database (orders and payments).
pub const DATABASE_LABEL: &str = "orders";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "orders_and_payments",
        sql: include_str!("../../../../migrations/orders/0001_orders_and_payments.sql"),
    },
    Migration {
        version: 2,
        name: "refunds_and_session_expiry",
        sql: include_str!("../../../../migrations/orders/0002_refunds_and_session_expiry.sql"),
    },
];

/// Open the checkout database with its schema current.
pub fn open_database() -> Result<storage::SpinSqlite, storage::DbError> {
    storage::SpinSqlite::open_ready(DATABASE_LABEL, MIGRATIONS, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/orders");
        storage::migrations::check_against_directory(MIGRATIONS, std::path::Path::new(dir)).unwrap();
    }
}
