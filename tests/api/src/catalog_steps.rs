//! Catalog management steps, as an admin.

use crate::{ApiResponse, TestApp, TestUser};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};

/// A SKU no other test (or earlier run) uses.
pub fn unique_sku(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or(0);
    format!("T-{}-{}-{nanos}-{}", tag.to_uppercase(), std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

impl TestApp {
    /// `POST /api/products` as `admin` with any body.
    pub fn create_product(&self, admin: &TestUser, body: Value) -> ApiResponse {
        self.send_as(&admin.access_token, "POST", "/api/products", Some(&body))
    }

    /// A new active product with this stock, priced 1999 USD; returns its JSON.
    pub fn new_product(&self, admin: &TestUser, name: &str, stock: i64) -> Value {
        let r = self.create_product(admin, json!({
            "sku": unique_sku("p"),
            "name": name,
            "description": "Made by the test suite.",
            "price": { "amount_minor": 1999, "currency": "USD" },
            "stock_on_hand": stock,
        }));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()
    }

    /// `POST /api/inventory/reservations` as `admin`.
    pub fn reserve(&self, admin: &TestUser, order_id: &str, lines: &[(&str, u32)], ttl_seconds: u32) -> ApiResponse {
        let lines: Vec<Value> = lines.iter().map(|(p, q)| json!({ "product_id": p, "quantity": q })).collect();
        self.send_as(
            &admin.access_token,
            "POST",
            "/api/inventory/reservations",
            Some(&json!({ "order_id": order_id, "lines": lines, "ttl_seconds": ttl_seconds })),
        )
    }

    /// The product as the public sees it.
    pub fn public_product(&self, id: &str) -> ApiResponse {
        self.get_path(&format!("/api/products/{id}"))
    }
}
