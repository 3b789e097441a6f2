//! The catalog service: products, categories and (with the inventory issue)
//! stock. This crate holds everything except the two entry points:
//!
//! - `domain`: types that cannot hold invalid values and the listing rules;
//! - `repository`: the SQL, through the storage trait only;
//! - `schema`: the embedded migrations and the demo catalog;
//! - `images`: uploads to object storage (presigned `PUT`) and product images.
//!
//! The HTTP component (`components/catalog/http`) and the WIT contract
//! component (`components/catalog/contract`) are thin adapters over it.

pub mod admin;
pub mod domain;
pub mod images;
pub mod inventory;
pub mod metrics;
pub mod read_cache;
pub mod repository;
pub mod schema;
pub mod settings;

#[cfg(test)]
mod properties;

/// Storage failures, re-exported for the adapters.
pub use storage::DbError as StorageError;

/// The Spin SQLite label of the catalog database.
pub const DATABASE_LABEL: &str = "catalog";

/// Open the catalog database, bring its schema up to date and, when the
/// operator opted in with the `demo_catalog` variable, load the demo catalog
/// once. Called at the start of every request: the fast path is one query
/// (schema and demo data checked together).
pub fn open_database() -> Result<storage::ServiceDb, storage::DbError> {
    let demo = storage::migrations::DataSet { name: schema::DEMO_CATALOG_NAME, sql: schema::DEMO_CATALOG };
    let data: &[storage::migrations::DataSet] = if demo_catalog_enabled() { &[demo] } else { &[] };
    storage::ServiceDb::open(DATABASE_LABEL, schema::DATABASE_URL_VARIABLE, &schema::MIGRATION_SET, data)
}

/// `demo_catalog = "true"` loads the demo data. A component that does not
/// map the variable never loads it.
fn demo_catalog_enabled() -> bool {
    spin_sdk::variables::get("demo_catalog")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        .unwrap_or(false)
}
