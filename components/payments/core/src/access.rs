//! Reading an order as checkout must: an unpaid order past its expiry is
//! expired (its stock released, its payment objects closed) the moment
//! anyone reads it; and how payment errors reach clients.

use crate::lifecycle::{self, Outcome, PaymentError, Source};
use http_kit::auth::Caller;
use http_kit::ApiError;
use orders_core::access::owned_order;
use orders_core::domain::Status;
use orders_core::inventory_client::WitInventory;
use orders_core::orders::{self, Order};
use serde_json::json;
use storage::Db;

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::UnknownOrder => ApiError::not_found("order"),
            PaymentError::InventoryUnavailable(m) => {
                ApiError::unavailable("inventory_unavailable", "stock could not be updated; retry shortly")
                    .with_header("retry-after", "1")
                    .with_internal(m)
            }
            PaymentError::ObjectOfAnotherOrder { id, order_id } => {
                ApiError::new(502, "payment_provider_error", "Stripe named a payment object this shop holds for another order; nothing was recorded")
                    .with_internal(format!("{id} is recorded for order {order_id}"))
            }
            PaymentError::Storage(e) => e.into(),
        }
    }
}

/// An unpaid order past its expiry is expired (its stock released) the
/// moment anyone reads it, even if no sweep has run yet.
pub fn expire_if_overdue(db: &dyn Db, order: Order) -> Result<Order, ApiError> {
    if order.status == Status::PendingPayment && order.expires_at <= clock::unix_now() {
        lifecycle::apply(db, &order.id, &Outcome::Expired, Source::Shop, "expiry", &WitInventory)?;
        close_payment_objects(db, &order.id);
        return orders::load(db, &order.id)?.ok_or_else(|| ApiError::not_found("order"));
    }
    Ok(order)
}

/// After an unpaid order ended: close its Checkout Sessions and intents at
/// Stripe now if possible; the orders sweep retries what could not be done.
pub fn close_payment_objects(db: &dyn Db, order_id: &str) {
    if let Err(e) = crate::closing::close_at_stripe(db, &crate::stripe::StripeConfig::from_variables(), Some(order_id), 1) {
        println!("{}", json!({ "level": "warn", "service": "orders", "order_id": order_id, "stripe_cleanup_deferred": e.to_string() }));
    }
}

/// The order if `caller` owns it, or is an admin and `admin_ok`, expired
/// first if its hold lapsed. Anyone else gets the same 404 as for an order
/// that does not exist.
pub fn order_for(db: &dyn Db, caller: &Caller, id: &str, admin_ok: bool) -> Result<Order, ApiError> {
    expire_if_overdue(db, owned_order(db, caller, id, admin_ok)?)
}
