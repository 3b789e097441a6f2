//! Checkout steps: place orders, pay through the fake Stripe, and deliver
//! webhooks signed exactly as Stripe signs them.

use crate::{ApiResponse, Shopper, TestApp, TestUser, STRIPE_WEBHOOK_SECRET};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Stripe's signature header for a body at time `t`.
pub fn stripe_signature(body: &str, secret: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl TestApp {
    /// A customer with `quantity` of a new product (of this stock and price) in the cart.
    pub fn customer_with_cart(&self, stock: i64, price: i64, quantity: i64) -> (TestUser, String) {
        let admin = self.admin();
        let product = self.new_product(&admin, "Checkout Widget", stock);
        let id = product["id"].as_str().unwrap().to_string();
        self.send_as(&admin.access_token, "PUT", &format!("/api/products/{id}"), Some(&json!({ "price": { "amount_minor": price, "currency": "USD" } })));
        let user = self.register_customer();
        let r = self.add_to_cart(&mut Shopper::user(&user.access_token), &id, quantity);
        assert_eq!(r.status, 200, "{}", r.body);
        (user, id)
    }

    /// `POST /api/orders` with an optional Idempotency-Key and body.
    pub fn place_order(&self, user: &TestUser, key: Option<&str>, body: Option<Value>) -> ApiResponse {
        let auth = format!("Bearer {}", user.access_token);
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(k) = key {
            headers.push(("idempotency-key", k));
        }
        match body {
            Some(b) => self.request("POST", "/api/orders", &headers, Some(&b)),
            None => self.request_raw("POST", "/api/orders", &headers, Vec::new()),
        }
    }

    /// Deliver a Stripe event, signed now with the app's webhook secret.
    pub fn stripe_sends(&self, event: &Value) -> ApiResponse {
        self.stripe_sends_signed(event, &stripe_signature(&event.to_string(), STRIPE_WEBHOOK_SECRET, now()))
    }

    /// Deliver a Stripe event with a given signature header.
    pub fn stripe_sends_signed(&self, event: &Value, signature: &str) -> ApiResponse {
        self.request_raw(
            "POST",
            "/api/webhooks/stripe",
            &[("content-type", "application/json"), ("stripe-signature", signature)],
            event.to_string().into_bytes(),
        )
    }

    /// Create a Checkout Session for the order; returns the session id.
    pub fn start_checkout(&self, user: &TestUser, order_id: &str) -> String {
        let r = self.send_as(&user.access_token, "POST", "/api/payments/checkout-session", Some(&json!({ "order_id": order_id })));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// The order as its owner sees it.
    pub fn order(&self, user: &TestUser, order_id: &str) -> Value {
        let r = self.send_as(&user.access_token, "GET", &format!("/api/orders/{order_id}"), None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }
}

/// A Stripe event envelope.
pub fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({ "id": id, "object": "event", "type": kind, "created": now(), "data": { "object": object } })
}
