//! The catalog's side of the `shop:platform/catalog` contract.
//!
//! This component is not an HTTP handler: Spin composes it into each service
//! that declares it as a dependency (see `[component.cart.dependencies]` in
//! `spin.toml`), so a call is an in-process function call, not a network hop,
//! and works on every Spin host including Fermyon Cloud. It reads the catalog
//! database through `catalog-core`, the same code the catalog's HTTP component
//! uses, so the catalog stays the only owner of its tables.

use catalog_core::domain::ProductId;
use catalog_core::repository;
use exports::shop::platform::catalog::{Guest, ProductSummary};
use shop::platform::types::{Money, Unavailable};

spin_sdk::wit_bindgen::generate!({
    world: "catalog-provider",
    path: "../../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

struct CatalogContract;

impl Guest for CatalogContract {
    fn get_products(ids: Vec<String>) -> Result<Vec<ProductSummary>, Unavailable> {
        let ids: Vec<ProductId> = ids.iter().filter_map(|raw| ProductId::parse(raw).ok()).collect();
        let unavailable = |e: catalog_core::StorageError| Unavailable { message: e.to_string() };
        let db = catalog_core::open_database().map_err(unavailable)?;
        let products = repository::get_products_by_ids(&db, &ids).map_err(unavailable)?;
        Ok(products
            .into_iter()
            .map(|p| ProductSummary {
                id: p.id.to_string(),
                sku: p.sku,
                name: p.name,
                unit_price: Money { amount_minor: p.price.amount_minor, currency: p.price.currency.code().to_string() },
                available: p.available,
                active: p.active,
            })
            .collect())
    }
}

export!(CatalogContract);
