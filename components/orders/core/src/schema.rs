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
    Migration {
        version: 3,
        name: "automatic_refunds",
        sql: include_str!("../../../../migrations/orders/0003_automatic_refunds.sql"),
    },
    Migration {
        version: 4,
        name: "payment_objects",
        sql: include_str!("../../../../migrations/orders/0004_payment_objects.sql"),
    },
    Migration {
        version: 5,
        name: "invoices",
        sql: include_str!("../../../../migrations/orders/0005_invoices.sql"),
    },
    Migration {
        version: 6,
        name: "metrics",
        sql: include_str!("../../../../migrations/orders/0006_metrics.sql"),
    },
    Migration {
        version: 7,
        name: "stripe_key_generations",
        sql: include_str!("../../../../migrations/orders/0007_stripe_key_generations.sql"),
    },
    Migration {
        version: 8,
        name: "owed_restocks",
        sql: include_str!("../../../../migrations/orders/0008_owed_restocks.sql"),
    },
    Migration {
        version: 9,
        name: "owed_stock",
        sql: include_str!("../../../../migrations/orders/0009_owed_stock.sql"),
    },
    Migration {
        version: 10,
        name: "event_traces",
        sql: include_str!("../../../../migrations/orders/0010_event_traces.sql"),
    },
    Migration {
        version: 11,
        name: "erased_accounts",
        sql: include_str!("../../../../migrations/orders/0011_erased_accounts.sql"),
    },
    Migration {
        version: 12,
        name: "order_cart_versions",
        sql: include_str!("../../../../migrations/orders/0012_order_cart_versions.sql"),
    },    Migration {
        version: 13,
        name: "outbox_by_aggregate",
        sql: include_str!("../../../../migrations/orders/0013_outbox_by_aggregate.sql"),
    },
    Migration { version: 14, name: "disputes", sql: include_str!("../../../../migrations/orders/0014_disputes.sql") },
    Migration { version: 15, name: "session_checks", sql: include_str!("../../../../migrations/orders/0015_session_checks.sql") },
];

/// Open the checkout database with its schema current.
pub fn open_database() -> Result<storage::ServiceDb, storage::DbError> {
    storage::ServiceDb::open(DATABASE_LABEL, DATABASE_URL_VARIABLE, &MIGRATION_SET, &[])
}

/// The Spin variable that selects this database's backend: empty for the
/// embedded SQLite label, a `postgres://` URL for Postgres.
pub const DATABASE_URL_VARIABLE: &str = "orders_database_url";

/// The same schema for Postgres, in `migrations/postgres/orders/` (a test
/// checks this list against that folder too).
pub const PG_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "orders",
        sql: include_str!("../../../../migrations/postgres/orders/0001_orders.sql"),
    },
    Migration {
        version: 2,
        name: "automatic_refunds",
        sql: include_str!("../../../../migrations/postgres/orders/0002_automatic_refunds.sql"),
    },
    Migration {
        version: 3,
        name: "payment_objects",
        sql: include_str!("../../../../migrations/postgres/orders/0003_payment_objects.sql"),
    },
    Migration {
        version: 4,
        name: "invoices",
        sql: include_str!("../../../../migrations/postgres/orders/0004_invoices.sql"),
    },
    Migration {
        version: 5,
        name: "metrics",
        sql: include_str!("../../../../migrations/postgres/orders/0005_metrics.sql"),
    },
    Migration {
        version: 6,
        name: "stripe_key_generations",
        sql: include_str!("../../../../migrations/postgres/orders/0006_stripe_key_generations.sql"),
    },
    Migration {
        version: 7,
        name: "owed_restocks",
        sql: include_str!("../../../../migrations/postgres/orders/0007_owed_restocks.sql"),
    },
    Migration {
        version: 8,
        name: "owed_stock",
        sql: include_str!("../../../../migrations/postgres/orders/0008_owed_stock.sql"),
    },
    Migration {
        version: 9,
        name: "event_traces",
        sql: include_str!("../../../../migrations/postgres/orders/0009_event_traces.sql"),
    },
    Migration {
        version: 10,
        name: "erased_accounts",
        sql: include_str!("../../../../migrations/postgres/orders/0010_erased_accounts.sql"),
    },
    Migration {
        version: 11,
        name: "order_cart_versions",
        sql: include_str!("../../../../migrations/postgres/orders/0011_order_cart_versions.sql"),
    },    Migration {
        version: 12,
        name: "outbox_by_aggregate",
        sql: include_str!("../../../../migrations/postgres/orders/0012_outbox_by_aggregate.sql"),
    },
    Migration { version: 13, name: "disputes", sql: include_str!("../../../../migrations/postgres/orders/0013_disputes.sql") },
    Migration { version: 14, name: "session_checks", sql: include_str!("../../../../migrations/postgres/orders/0014_session_checks.sql") },
];

/// Both lists: [`storage::MigrationSet::for_dialect`] picks the one of the
/// configured backend.
pub const MIGRATION_SET: storage::MigrationSet = storage::MigrationSet { sqlite: MIGRATIONS, postgres: PG_MIGRATIONS };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/orders");
        storage::migrations::check_against_directory(MIGRATIONS, std::path::Path::new(dir)).unwrap();
    }

    #[test]
    fn every_postgres_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/postgres/orders");
        storage::migrations::check_against_directory(PG_MIGRATIONS, std::path::Path::new(dir)).unwrap();
        for m in PG_MIGRATIONS {
            storage::migrations::check_postgres_sql(m.sql).unwrap();
        }
    }
}
