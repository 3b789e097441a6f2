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
];

/// The demo catalog (see the README): idempotent inserts keyed on fixed ids.
pub const DEMO_CATALOG: &str = include_str!("../../../../migrations/seed/demo_catalog.sql");

/// The name the demo catalog is recorded under in `data_loads`.
pub const DEMO_CATALOG_NAME: &str = "demo_catalog";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/catalog");
        storage::migrations::check_against_directory(MIGRATIONS, std::path::Path::new(dir)).unwrap();
    }
}
