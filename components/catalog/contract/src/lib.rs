//! The catalog's side of the `shop:catalog/catalog`,
//! `shop:catalog/inventory` and `shop:catalog/metrics` contracts.
//!
//! This component is not an HTTP handler: Spin composes it into each service
//! that declares it as a dependency (see `[component.cart.dependencies]` in
//! `spin.toml`), so a call is an in-process function call, not a network hop,
//! and works on every Spin host including Fermyon Cloud. It reads and writes
//! the catalog database through `catalog-core`, the same code the catalog's
//! HTTP component uses, so the catalog stays the only owner of its tables.

use catalog_core::domain::ProductId;
use catalog_core::inventory::{self as inv, InventoryError as CoreInventoryError, ReserveError as CoreReserveError};
use catalog_core::read_cache::Cache;
use catalog_core::{repository, StorageError};
use exports::shop::catalog::catalog::{Guest as CatalogGuest, ProductSummary};
use exports::shop::catalog::inventory::{
    Guest as InventoryGuest, InventoryError, ReservationLine, ReserveError, Shortage,
};
use exports::shop::catalog::metrics::{Guest as MetricsGuest, StockFigures};
use shop::types::types::{Money, Unavailable};

spin_sdk::wit_bindgen::generate!({
    world: "catalog-provider",
    path: "../../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

struct CatalogContract;

fn unavailable(e: StorageError) -> Unavailable {
    Unavailable { message: e.to_string() }
}

impl CatalogGuest for CatalogContract {
    /// Product look-ups for carts and checkout, through the read cache
    /// (`catalog_core::read_cache`): names, prices and `active` are always
    /// current (admin writes invalidate it), `available` may be up to the
    /// cache TTL behind; reservations check exact stock regardless.
    fn get_products(ids: Vec<String>) -> Result<Vec<ProductSummary>, Unavailable> {
        let ids: Vec<ProductId> = ids.iter().filter_map(|raw| ProductId::parse(raw).ok()).collect();
        let keys: Vec<String> = ids.iter().map(|id| format!("summary|{id}")).collect();
        let (cache, cached) = match Cache::get_many(&keys) {
            Some((cache, bodies)) => (Some(cache), bodies),
            None => (None, vec![None; ids.len()]),
        };
        let mut found: Vec<ProductSummary> = Vec::with_capacity(ids.len());
        let mut missing: Vec<ProductId> = Vec::new();
        for (id, body) in ids.iter().zip(cached) {
            match body.and_then(|b| decode_summary(&b)) {
                Some(summary) => found.push(summary),
                None => missing.push(id.clone()),
            }
        }
        if !missing.is_empty() {
            let db = catalog_core::open_database().map_err(unavailable)?;
            for p in repository::get_products_by_ids(&db, &missing, clock::unix_now()).map_err(unavailable)? {
                let summary = ProductSummary {
                    id: p.id.to_string(),
                    sku: p.sku,
                    name: p.name,
                    unit_price: Money { amount_minor: p.price.amount_minor, currency: p.price.currency.code().to_string() },
                    available: p.available,
                    active: p.active,
                };
                if let Some(cache) = &cache {
                    cache.put(&format!("summary|{}", summary.id), &encode_summary(&summary));
                }
                found.push(summary);
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }
}

/// A summary as cached: JSON of its fields.
fn encode_summary(p: &ProductSummary) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": p.id, "sku": p.sku, "name": p.name,
        "amount_minor": p.unit_price.amount_minor, "currency": p.unit_price.currency,
        "available": p.available, "active": p.active,
    }))
    .unwrap_or_default()
}

fn decode_summary(raw: &[u8]) -> Option<ProductSummary> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    Some(ProductSummary {
        id: v["id"].as_str()?.to_string(),
        sku: v["sku"].as_str()?.to_string(),
        name: v["name"].as_str()?.to_string(),
        unit_price: Money { amount_minor: v["amount_minor"].as_i64()?, currency: v["currency"].as_str()?.to_string() },
        available: v["available"].as_i64()?,
        active: v["active"].as_bool()?,
    })
}

fn inventory_error(e: CoreInventoryError) -> InventoryError {
    match e {
        CoreInventoryError::UnknownOrder => InventoryError::UnknownOrder,
        CoreInventoryError::Expired => InventoryError::Expired,
        CoreInventoryError::AlreadyReleased => InventoryError::AlreadyReleased,
        CoreInventoryError::AlreadyCommitted => InventoryError::AlreadyCommitted,
        CoreInventoryError::Storage(e) => InventoryError::Unavailable(unavailable(e)),
    }
}

fn reserve_error(e: CoreReserveError) -> ReserveError {
    match e {
        CoreReserveError::Insufficient(s) => ReserveError::InsufficientStock(
            s.into_iter().map(|s| Shortage { product_id: s.product_id, requested: s.requested, available: s.available }).collect(),
        ),
        CoreReserveError::Invalid(m) => ReserveError::InvalidRequest(m),
        CoreReserveError::Conflict(m) => ReserveError::Conflict(m),
        CoreReserveError::Storage(e) => ReserveError::Unavailable(unavailable(e)),
    }
}

impl InventoryGuest for CatalogContract {
    fn reserve(order_id: String, lines: Vec<ReservationLine>, ttl_seconds: u32) -> Result<(), ReserveError> {
        let order = inv::parse_order_id(&order_id).map_err(ReserveError::InvalidRequest)?;
        let mut parsed = Vec::with_capacity(lines.len());
        let mut unknown = Vec::new();
        for l in lines {
            match ProductId::parse(&l.product_id) {
                Ok(product_id) => parsed.push(inv::Line { product_id, quantity: l.quantity }),
                // A malformed id can never be in stock: report it as short.
                Err(_) => unknown.push(Shortage { product_id: l.product_id, requested: l.quantity, available: 0 }),
            }
        }
        if !unknown.is_empty() {
            return Err(ReserveError::InsufficientStock(unknown));
        }
        let db = catalog_core::open_database().map_err(|e| ReserveError::Unavailable(unavailable(e)))?;
        inv::reserve(&db, &order, &parsed, ttl_seconds, clock::unix_now()).map(|_| ()).map_err(reserve_error)
    }

    fn extend(order_id: String, ttl_seconds: u32) -> Result<(), InventoryError> {
        let db = catalog_core::open_database().map_err(|e| InventoryError::Unavailable(unavailable(e)))?;
        inv::extend(&db, &order_id, ttl_seconds, clock::unix_now()).map(|_| ()).map_err(inventory_error)
    }

    fn commit(order_id: String) -> Result<(), InventoryError> {
        let db = catalog_core::open_database().map_err(|e| InventoryError::Unavailable(unavailable(e)))?;
        inv::commit(&db, &order_id, clock::unix_now()).map(|_| ()).map_err(inventory_error)
    }

    fn release(order_id: String) -> Result<(), InventoryError> {
        let db = catalog_core::open_database().map_err(|e| InventoryError::Unavailable(unavailable(e)))?;
        inv::release(&db, &order_id, clock::unix_now()).map(|_| ()).map_err(inventory_error)
    }

    fn recommit(order_id: String) -> Result<(), InventoryError> {
        let db = catalog_core::open_database().map_err(|e| InventoryError::Unavailable(unavailable(e)))?;
        inv::recommit(&db, &order_id, clock::unix_now()).map(|_| ()).map_err(inventory_error)
    }

    fn restock(order_id: String, operation_id: String, lines: Vec<ReservationLine>) -> Result<Vec<ReservationLine>, ReserveError> {
        let db = catalog_core::open_database().map_err(|e| ReserveError::Unavailable(unavailable(e)))?;
        let lines: Vec<(String, u32)> = lines.into_iter().map(|l| (l.product_id, l.quantity)).collect();
        inv::restock(&db, &order_id, &operation_id, &lines, clock::unix_now())
            .map(|back| back.into_iter().map(|l| ReservationLine { product_id: l.product_id, quantity: l.quantity }).collect())
            .map_err(reserve_error)
    }

    fn return_sold(order_id: String) -> Result<(), InventoryError> {
        let db = catalog_core::open_database().map_err(|e| InventoryError::Unavailable(unavailable(e)))?;
        inv::return_sold(&db, &order_id, clock::unix_now()).map(|_| ()).map_err(inventory_error)
    }
}

impl MetricsGuest for CatalogContract {
    /// For `GET /metrics`: two indexed counts (`catalog_core::metrics`).
    fn figures() -> Result<StockFigures, Unavailable> {
        let db = catalog_core::open_database().map_err(unavailable)?;
        let f = catalog_core::metrics::stock_figures(&db, clock::unix_now()).map_err(unavailable)?;
        Ok(StockFigures { products_out_of_stock: f.products_out_of_stock, live_reservations: f.live_reservations })
    }
}

export!(CatalogContract);
