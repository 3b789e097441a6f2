//! Cart steps: as a guest (with a cart token) or as a signed-in user.

use crate::{ApiResponse, TestApp};
use serde_json::json;

/// Who is holding the cart.
#[derive(Debug, Clone, Default)]
pub struct Shopper {
    pub access_token: Option<String>,
    pub cart_token: Option<String>,
}

impl Shopper {
    pub fn guest() -> Self {
        Self::default()
    }

    pub fn user(access_token: &str) -> Self {
        Self { access_token: Some(access_token.to_string()), cart_token: None }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(t) = &self.access_token {
            h.push(("authorization", format!("Bearer {t}")));
        }
        if let Some(t) = &self.cart_token {
            h.push(("x-cart-token", t.clone()));
        }
        h
    }

    /// Keep the cart token the server sent, like a storefront would.
    fn remember(&mut self, r: &ApiResponse) {
        if let Some(t) = r.header("x-cart-token") {
            self.cart_token = Some(t.to_string());
        }
    }
}

impl TestApp {
    fn cart_call(&self, who: &mut Shopper, method: &str, path: &str, body: Option<serde_json::Value>) -> ApiResponse {
        let owned = who.headers();
        let headers: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = self.request(method, path, &headers, body.as_ref());
        who.remember(&r);
        r
    }

    pub fn get_cart(&self, who: &mut Shopper) -> ApiResponse {
        self.cart_call(who, "GET", "/api/cart", None)
    }

    pub fn add_to_cart(&self, who: &mut Shopper, product_id: &str, quantity: i64) -> ApiResponse {
        self.cart_call(who, "POST", "/api/cart/items", Some(json!({ "product_id": product_id, "quantity": quantity })))
    }

    pub fn set_cart_quantity(&self, who: &mut Shopper, product_id: &str, quantity: i64) -> ApiResponse {
        self.cart_call(who, "PUT", &format!("/api/cart/items/{product_id}"), Some(json!({ "quantity": quantity })))
    }

    pub fn remove_from_cart(&self, who: &mut Shopper, product_id: &str) -> ApiResponse {
        self.cart_call(who, "DELETE", &format!("/api/cart/items/{product_id}"), None)
    }

    pub fn clear_cart(&self, who: &mut Shopper) -> ApiResponse {
        self.cart_call(who, "DELETE", "/api/cart", None)
    }
}
