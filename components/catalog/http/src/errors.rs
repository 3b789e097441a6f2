//! How catalog rule violations reach clients.

use catalog_core::admin::AdminError;
use catalog_core::inventory::{InventoryError, ReserveError};
use http_kit::ApiError;
use serde_json::json;

pub fn admin(e: AdminError) -> ApiError {
    match e {
        AdminError::Invalid(fields) => ApiError::validation(fields),
        AdminError::NotFound(what) => ApiError::not_found(what),
        AdminError::Conflict(code, message) => ApiError::new(409, code, message),
        AdminError::Storage(e) => e.into(),
    }
}

pub fn reserve(e: ReserveError) -> ApiError {
    match e {
        ReserveError::Insufficient(shortages) => {
            let names: Vec<&str> = shortages.iter().map(|s| s.product_id.as_str()).collect();
            ApiError::new(409, "insufficient_stock", format!("not enough stock for {}", names.join(", ")))
                .with_details(json!({ "shortages": shortages }))
        }
        ReserveError::Invalid(msg) => ApiError::new(422, "invalid_reservation", msg),
        ReserveError::Conflict(msg) => ApiError::new(409, "reservation_conflict", msg),
        ReserveError::Storage(e) => e.into(),
    }
}

pub fn inventory(e: InventoryError) -> ApiError {
    match e {
        InventoryError::UnknownOrder => ApiError::not_found("reservation"),
        InventoryError::Expired => {
            ApiError::new(409, "reservation_expired", "the reservation lapsed and its stock is no longer free")
        }
        InventoryError::AlreadyReleased => ApiError::new(409, "reservation_released", "the reservation was released"),
        InventoryError::AlreadyCommitted => {
            ApiError::new(409, "reservation_committed", "the reservation was committed; its stock is sold")
        }
        InventoryError::Storage(e) => e.into(),
    }
}
