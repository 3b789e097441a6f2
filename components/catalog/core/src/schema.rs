//! The catalog database's schema and optional demo data, embedded from the
//! repository's `migrations/` folder at build time.

use storage::migrations::Migration;

/// Every catalog migration, in order. A unit test checks this list against
/// the files in `migrations/catalog/`, so a new file cannot be forgotten.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "products_and_categories",
        sql: include_str!("../../../../migrations/catalog/0001_products_and_categories.sql"),
    },
    Migration {
        version: 2,
        name: "search_and_reservations",
        sql: include_str!("../../../../migrations/catalog/0002_search_and_reservations.sql"),
    },
    Migration {
        version: 3,
        name: "reserved_stock",
        sql: include_str!("../../../../migrations/catalog/0003_reserved_stock.sql"),
    },
    Migration {
        version: 4,
        name: "product_images",
        sql: include_str!("../../../../migrations/catalog/0004_product_images.sql"),
    },
    Migration {
        version: 5,
        name: "restocks",
        sql: include_str!("../../../../migrations/catalog/0005_restocks.sql"),
    },
    Migration {
        version: 6,
        name: "stock_index",
        sql: include_str!("../../../../migrations/catalog/0006_stock_index.sql"),
    },
    Migration {
        version: 7,
        name: "forgotten_uploads",
        sql: include_str!("../../../../migrations/catalog/0007_forgotten_uploads.sql"),
    },
];

/// The demo catalog (see the README): idempotent inserts keyed on fixed ids.
pub const DEMO_CATALOG: &str = include_str!("../../../../migrations/seed/demo_catalog.sql");

/// The name the demo catalog is recorded under in `data_loads`.
pub const DEMO_CATALOG_NAME: &str = "demo_catalog";

/// The Spin variable that selects this database's backend: empty for the
/// embedded SQLite label, a `postgres://` URL for Postgres.
pub const DATABASE_URL_VARIABLE: &str = "catalog_database_url";

/// The same schema for Postgres, in `migrations/postgres/catalog/` (a test
/// checks this list against that folder too).
pub const PG_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "catalog",
        sql: include_str!("../../../../migrations/postgres/catalog/0001_catalog.sql"),
    },
    Migration {
        version: 2,
        name: "search_folds_diacritics",
        sql: include_str!("../../../../migrations/postgres/catalog/0002_search_folds_diacritics.sql"),
    },
    Migration {
        version: 3,
        name: "product_images",
        sql: include_str!("../../../../migrations/postgres/catalog/0003_product_images.sql"),
    },
    Migration {
        version: 4,
        name: "restocks",
        sql: include_str!("../../../../migrations/postgres/catalog/0004_restocks.sql"),
    },
    Migration {
        version: 5,
        name: "stock_index",
        sql: include_str!("../../../../migrations/postgres/catalog/0005_stock_index.sql"),
    },
    Migration {
        version: 6,
        name: "search_splits_punctuation",
        sql: include_str!("../../../../migrations/postgres/catalog/0006_search_splits_punctuation.sql"),
    },
    Migration {
        version: 7,
        name: "forgotten_uploads",
        sql: include_str!("../../../../migrations/postgres/catalog/0007_forgotten_uploads.sql"),
    },
];

/// Both lists: [`storage::MigrationSet::for_dialect`] picks the one of the
/// configured backend.
pub const MIGRATION_SET: storage::MigrationSet = storage::MigrationSet { sqlite: MIGRATIONS, postgres: PG_MIGRATIONS };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/catalog");
        storage::migrations::check_against_directory(MIGRATIONS, std::path::Path::new(dir)).unwrap();
    }

    #[test]
    fn every_postgres_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/postgres/catalog");
        storage::migrations::check_against_directory(PG_MIGRATIONS, std::path::Path::new(dir)).unwrap();
        for m in PG_MIGRATIONS {
            storage::migrations::check_postgres_sql(m.sql).unwrap();
        }
    }
}
