//! Who may see an order, lazy expiry on the way, and how checkout's errors
//! reach clients — shared by the orders and payments components.

use crate::domain::Status;
use crate::inventory_client::WitInventory;
use crate::orders::{self, Order, OrderError};
use crate::payments::{self, Outcome, PaymentError};
use http_kit::auth::Caller;
use http_kit::ApiError;
use serde_json::json;
use storage::Db;

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::NotFound => ApiError::not_found("order"),
            OrderError::Transition(t) => ApiError::new(409, "invalid_transition", t.to_string())
                .with_details(json!({ "current_status": t.from, "requested_status": t.to })),
            OrderError::Storage(e) => e.into(),
        }
    }
}

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::UnknownOrder => ApiError::not_found("order"),
            PaymentError::InventoryUnavailable(m) => {
                ApiError::unavailable("inventory_unavailable", "stock could not be updated; retry shortly")
                    .with_header("retry-after", "1")
                    .with_internal(m)
            }
            PaymentError::Storage(e) => e.into(),
        }
    }
}

/// An unpaid order past its expiry is expired (its stock released) the
/// moment anyone reads it, even if Stripe's `expired` event never arrives.
pub fn expire_if_overdue(db: &dyn Db, order: Order) -> Result<Order, ApiError> {
    if order.status == Status::PendingPayment && order.expires_at <= clock::unix_now() {
        payments::apply(db, &order.id, &Outcome::Expired, None, "expiry", &WitInventory)?;
        close_payment_objects(db, &order.id);
        return orders::load(db, &order.id)?.ok_or_else(|| ApiError::not_found("order"));
    }
    Ok(order)
}

/// After an unpaid order ended: close its Checkout Session and intent at
/// Stripe now if possible; the orders sweep retries what could not be done.
pub fn close_payment_objects(db: &dyn Db, order_id: &str) {
    if let Err(e) = payments::close_at_stripe(db, &crate::stripe::StripeConfig::from_variables(), Some(order_id), 1) {
        println!("{}", json!({ "level": "warn", "service": "orders", "order_id": order_id, "stripe_cleanup_deferred": e.to_string() }));
    }
}

/// The order if `caller` owns it, or is an admin and `admin_ok`. Anyone else
/// gets the same 404 as for an order that does not exist.
pub fn order_for(db: &dyn Db, caller: &Caller, id: &str, admin_ok: bool) -> Result<Order, ApiError> {
    expire_if_overdue(db, owned_order(db, caller, id, admin_ok)?)
}

/// [`order_for`] without the lazy expiry: for applying a payment first
/// (the success-page return), so that the same payment has the same effect
/// whether the browser or the webhook arrives first.
pub fn owned_order(db: &dyn Db, caller: &Caller, id: &str, admin_ok: bool) -> Result<Order, ApiError> {
    orders::load(db, id.trim())?
        .filter(|o| o.user_id == caller.user_id || (admin_ok && caller.is_admin()))
        .ok_or_else(|| ApiError::not_found("order"))
}
