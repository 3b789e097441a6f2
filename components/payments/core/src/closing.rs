//! Closing an ended order's payment objects at Stripe, so that nobody can
//! pay for stock the order gave back.

use crate::ledger::{self, Kind};
use crate::stripe::StripeError;
use crate::stripe_keys::StripeKey;
use storage::{Db, DbError};

/// Close the Stripe objects of ended unpaid orders (one order, or up to
/// `limit` of all): `POST /v1/checkout/sessions/{id}/expire` for each of
/// its open Checkout Sessions and `POST /v1/payment_intents/{id}/cancel`
/// for each PaymentIntent it created itself that has not ended (Checkout's
/// own intents end with their session). Stripe refusing because the object is already closed counts as
/// done; a session completed meanwhile brings its payment, which is then
/// refunded automatically. Stripe unreachable leaves it due for the next
/// sweep. Returns how many orders were closed.
pub fn close_at_stripe(db: &dyn Db, stripe: &crate::stripe::StripeConfig, order_id: Option<&str>, limit: u32) -> Result<usize, DbError> {
    if !stripe.configured() {
        return Ok(0);
    }
    let rows = match order_id {
        Some(id) => db.query("SELECT * FROM payments WHERE stripe_cleanup = 'due' AND order_id = ?", &[id.into()])?,
        None => db.query("SELECT * FROM payments WHERE stripe_cleanup = 'due' ORDER BY updated_at LIMIT ?", &[(limit as i64).into()])?,
    };
    let mut closed = 0;
    'orders: for r in rows.iter() {
        let order = r.text("order_id")?;
        // Every object of the order that could still take money, old
        // sessions included; Stripe's answer (the object, now closed) is
        // recorded as its status.
        for object in ledger::still_payable(db, &order)? {
            let (path, key, closed_status) = match object.kind {
                Kind::CheckoutSession => (format!("/v1/checkout/sessions/{}/expire", object.id), format!("expire:{}", object.id), "expired"),
                _ => (format!("/v1/payment_intents/{}/cancel", object.id), format!("cancel:{}", object.id), "canceled"),
            };
            let key = StripeKey::load(db, &key)?;
            let status = match key.post(db, stripe, &path, &[]) {
                Ok(answer) => answer["status"].as_str().filter(|s| !s.is_empty()).unwrap_or(closed_status).to_string(),
                // Already closed (Stripe says which way when asked: a
                // completed session's payment arrives as its own event).
                Err(StripeError::Rejected { .. }) | Err(StripeError::Unexpected(_)) => continue,
                // Stripe is down or limiting: the rest stays due for the
                // next call, which would otherwise wait out every object's
                // timeout in turn (found in review: a sweep during an
                // outage took half an hour).
                Err(StripeError::Unavailable(_) | StripeError::ServerError { .. } | StripeError::RateLimited { .. }) => break 'orders,
            };
            ledger::record(db, &order, object.kind, &object.id, &status, "shop", &Default::default()).map_err(|e| match e {
                ledger::LedgerError::Storage(d) => d,
                other => DbError::Other(format!("{other:?}")),
            })?;
        }
        db.execute("UPDATE payments SET stripe_cleanup = 'done' WHERE order_id = ? AND stripe_cleanup = 'due'", &[order.as_str().into()])?;
        closed += 1;
    }
    Ok(closed)
}
