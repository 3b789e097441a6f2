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

/// An order whose total is zero (its lines are all free) has nothing to
/// pay: it is paid at once, as a payment of 0 would pay it (its units
/// sold, its invoice issued, the confirmation email sent), without Stripe,
/// which takes no payment of 0 (found in review: such an order could never
/// be paid, and held its stock until it expired). Any other order comes
/// back as it is. A failure leaves it pending for the next call: the same
/// placement again (its Idempotency-Key), or asking to pay it.
pub fn complete_if_free(db: &dyn Db, order: Order) -> Result<Order, ApiError> {
    // Past its hold, the order is left to expire as any unpaid one (a
    // payment of 0 then would be a late payment, to no purpose).
    if order.total.amount_minor != 0 || order.status != Status::PendingPayment || order.expires_at <= clock::unix_now() {
        return Ok(order);
    }
    let outcome = Outcome::Paid { amount_minor: 0, currency: order.total.currency.code().to_string(), payment_intent: None };
    lifecycle::apply(db, &order.id, &outcome, Source::Shop, "checkout", &WitInventory)?;
    orders::load(db, &order.id)?.ok_or_else(|| ApiError::not_found("order"))
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
