//! Each order's payment summary (`payments`): the current Checkout Session
//! and the intent that paid (or the one the shop created), the payment's
//! overall status, refunded total, the expiry chosen for the next session,
//! and the mark that its Stripe objects must be closed. The objects
//! themselves, with their own statuses, are in the ledger ([`crate::ledger`]).

use crate::ledger::{self, Kind, LedgerError, Sighting};
use orders_core::domain::Status;
use orders_core::orders::Order;
use serde::Serialize;
use storage::{transaction, Db, DbError};

/// The payment record for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentRecord {
    pub order_id: String,
    pub status: String,
    pub checkout_session: Option<String>,
    pub payment_intent: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub amount_refunded: i64,
    /// When the current Checkout Session expires (Unix seconds).
    pub session_expires_at: Option<i64>,
}

impl PaymentRecord {
    /// Money was captured for the order (whatever has been refunded since).
    pub fn captured(&self) -> bool {
        matches!(self.status.as_str(), "paid" | "partially_refunded" | "refunded")
    }
}

pub fn payment_for(db: &dyn Db, order_id: &str) -> Result<Option<PaymentRecord>, DbError> {
    let rows = db.query("SELECT * FROM payments WHERE order_id = ?", &[order_id.into()])?;
    rows.first()
        .map(|r| {
            Ok(PaymentRecord {
                order_id: r.text("order_id")?,
                status: r.text("status")?,
                checkout_session: r.opt_text("checkout_session")?,
                payment_intent: r.opt_text("payment_intent")?,
                amount_minor: r.int("amount_minor")?,
                currency: r.text("currency")?,
                amount_refunded: r.int("amount_refunded")?,
                session_expires_at: r.opt_int("session_expires_at")?,
            })
        })
        .transpose()
}

/// Create or update the payment record when a session or intent is created.
/// A new session or intent after an attempt ended without money (expired,
/// failed, declined, abandoned) makes the payment `awaiting_payment` again:
/// the new one is the order's current attempt.
pub fn record_payment(db: &dyn Db, order: &Order, session: Option<&str>, intent: Option<&str>) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO payments (order_id, checkout_session, payment_intent, status, amount_minor, currency, updated_at) \
         VALUES (?, ?, ?, 'awaiting_payment', ?, ?, ?) \
         ON CONFLICT (order_id) DO UPDATE SET \
           status = CASE WHEN payments.status IN ('failed', 'session_expired', 'requires_payment_method', 'canceled') \
             AND ((excluded.checkout_session IS NOT NULL AND (payments.checkout_session IS NULL OR excluded.checkout_session <> payments.checkout_session)) \
               OR (excluded.payment_intent IS NOT NULL AND (payments.payment_intent IS NULL OR excluded.payment_intent <> payments.payment_intent))) \
             THEN 'awaiting_payment' ELSE payments.status END, \
           checkout_session = COALESCE(excluded.checkout_session, payments.checkout_session), \
           payment_intent = COALESCE(excluded.payment_intent, payments.payment_intent), updated_at = excluded.updated_at",
        &[
            order.id.as_str().into(),
            session.into(),
            intent.into(),
            order.total.amount_minor.into(),
            order.total.currency.code().into(),
            clock::now_rfc3339().into(),
        ],
    )
}

/// Fix the expiry of the order's next Checkout Session, once: a retried
/// request then sends Stripe exactly the same parameters under the same
/// Idempotency-Key, and Stripe answers it with the session it made. The
/// expiry chosen earlier is kept while its session is open (nearly to its
/// end: Stripe replays the session under its key), or, when no open
/// session has it (the request that chose it got no session: Stripe
/// unreachable, a 5xx, a rate limit), only while Stripe still takes it for
/// a new session ([`crate::stripe::SESSION_REUSE_AHEAD_SECS`]); past that
/// a retry would be refused for an expiry under Stripe's 30 minutes, so
/// `choose` is taken instead. `None` when a new expiry is needed and
/// `choose` is `None` (the order may not have another session).
pub fn session_expiry(db: &dyn Db, order: &Order, now: i64, choose: Option<i64>) -> Result<Option<i64>, DbError> {
    transaction(db, |tx| {
        record_payment(tx, order, None, None)?;
        if tx.dialect() == storage::Dialect::Postgres {
            // Concurrent session requests choose one expiry between them.
            tx.execute("SELECT order_id FROM payments WHERE order_id = ? FOR UPDATE", &[order.id.as_str().into()])?;
        }
        let current = payment_for(tx, &order.id)?.and_then(|p| p.session_expires_at);
        let open_with = |t: i64| -> Result<bool, DbError> {
            Ok(ledger::objects_of(tx, &order.id)?.iter().any(|o| o.kind == Kind::CheckoutSession && o.status == "open" && o.expires_at == Some(t)))
        };
        match (current, choose) {
            (Some(t), _) if t >= now + crate::stripe::SESSION_REUSE_AHEAD_SECS => Ok(Some(t)),
            (Some(t), _) if t > now + 60 && open_with(t)? => Ok(Some(t)),
            (_, Some(choose)) => {
                tx.execute("UPDATE payments SET session_expires_at = ? WHERE order_id = ?", &[choose.into(), order.id.as_str().into()])?;
                Ok(Some(choose))
            }
            (_, None) => Ok(None),
        }
    })
}

/// The Stripe Idempotency-Key of the order's next Checkout Session with
/// this expiry: the order and the expiry, so a retry sends the same key
/// and gets the same session; and, once a session with this expiry has
/// ended before its time (expired early at Stripe, or completed with a
/// failed payment), how many have, so the next request makes a new session
/// instead of being answered with the ended one.
pub fn session_key(db: &dyn Db, order_id: &str, expires_at: i64) -> Result<String, DbError> {
    let ended = ledger::objects_of(db, order_id)?
        .iter()
        .filter(|o| o.kind == Kind::CheckoutSession && o.status != "open" && o.expires_at == Some(expires_at))
        .count();
    Ok(match ended {
        0 => format!("checkout-session:{order_id}:{expires_at}"),
        n => format!("checkout-session:{order_id}:{expires_at}:{n}"),
    })
}

/// The order a Checkout Session or PaymentIntent belongs to: by the
/// ledger, or by the summary (the intent that paid).
pub fn order_of(db: &dyn Db, session: Option<&str>, intent: Option<&str>) -> Result<Option<String>, DbError> {
    let ids: Vec<&str> = [session, intent].into_iter().flatten().collect();
    if let Some(order) = ledger::owner(db, &ids)? {
        return Ok(Some(order));
    }
    let rows = db.query(
        "SELECT order_id FROM payments WHERE (checkout_session IS NOT NULL AND checkout_session = ?) \
         OR (payment_intent IS NOT NULL AND payment_intent = ?) LIMIT 1",
        &[session.into(), intent.into()],
    )?;
    rows.first().map(|r| r.text("order_id")).transpose()
}

/// Whether the order could still be paid when its new payment object was
/// recorded ([`record_created`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Payable,
    /// The order ended (its status now) while Stripe made the object: the
    /// object is recorded and marked to be closed at Stripe
    /// ([`crate::closing::close_at_stripe`]).
    OrderEnded(String),
}

/// Record a Checkout Session or PaymentIntent the shop just created for the
/// order: in the ledger (its own row and status) and as the order's
/// current one in the summary, in one transaction. A Stripe id already
/// recorded for another order is refused and nothing is written.
///
/// The order's row is locked first, as every payment outcome locks it, and
/// its status read again: a cancellation or expiry that committed while
/// Stripe made the object ends the order's objects only when they are
/// recorded, so this one would have stayed open. It is then recorded all
/// the same, marked to be closed, and the caller is told.
pub fn record_created(db: &dyn Db, order: &Order, kind: Kind, id: &str, expires_at: Option<i64>) -> Result<Recorded, LedgerError> {
    let status = match kind {
        Kind::CheckoutSession => "open",
        _ => "requires_payment_method",
    };
    transaction(db, |tx| {
        let current = orders_core::orders::load_locked(tx, &order.id)?.map(|o| o.status);
        let seen = Sighting { currency: Some(order.total.currency.code()), expires_at, ..Default::default() };
        ledger::record(tx, &order.id, kind, id, status, "shop", &seen)?;
        // Only a payable order's new object becomes its current one: an
        // order paid meanwhile keeps the intent that paid it, where its
        // refunds go and by which the same payment is known when it is
        // seen again (else it would pass for a second payment, refunded).
        let (session, intent) = match (current, kind) {
            (Some(Status::PendingPayment), Kind::CheckoutSession) => (Some(id), None),
            (Some(Status::PendingPayment), _) => (None, Some(id)),
            _ => (None, None),
        };
        record_payment(tx, order, session, intent)?;
        match current {
            Some(Status::PendingPayment) => {}
            ended => {
                tx.execute("UPDATE payments SET stripe_cleanup = 'due' WHERE order_id = ?", &[order.id.as_str().into()])?;
                return Ok(Recorded::OrderEnded(ended.map(|s| s.as_str().to_string()).unwrap_or_default()));
            }
        }
        Ok(Recorded::Payable)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use money::{Currency, Money};
    use orders_core::orders::{insert, NewOrder, OrderLine};
    use storage::native::MemDb;

    fn order(db: &MemDb) -> Order {
        storage::migrations::migrate(db, orders_core::schema::MIGRATIONS).unwrap();
        let usd = Currency::parse("USD").unwrap();
        let line = OrderLine { product_id: "p".into(), sku: "S".into(), name: "N".into(), unit_price: Money::new(500, usd), quantity: 1, line_total: Money::new(500, usd) };
        insert(db, &NewOrder { id: "o1".into(), user_id: "u".into(), currency: usd, lines: vec![line], shipping_address: None, expires_at: 100_000, cart_version: None }, "u").unwrap()
    }

    /// Stripe takes an expiry for a new session only 30 minutes or more
    /// ahead: a retry after a request that made no session sends the old
    /// expiry (the same Idempotency-Key) for a minute, then a new one. An
    /// open session keeps its expiry, and so its key, to its end.
    #[test]
    fn a_session_s_expiry_is_sent_again_only_while_stripe_takes_it() {
        let db = MemDb::new();
        let order = order(&db);
        let t = session_expiry(&db, &order, 1000, Some(1000 + 1920)).unwrap().unwrap();
        assert_eq!(t, 2920);
        assert_eq!(session_expiry(&db, &order, 1050, Some(1050 + 1920)).unwrap(), Some(t), "a retry within the minute: the same expiry");
        assert_eq!(session_expiry(&db, &order, 1061, Some(1061 + 1920)).unwrap(), Some(2981), "later, Stripe would refuse it for a new session");
        record_created(&db, &order, Kind::CheckoutSession, "cs_1", Some(2981)).unwrap();
        assert_eq!(session_expiry(&db, &order, 2800, Some(2800 + 1920)).unwrap(), Some(2981), "its session is open: replayed under its key");
        assert_eq!(session_expiry(&db, &order, 2800, None).unwrap(), Some(2981), "no new one allowed: the open one is still used");
        assert_eq!(session_expiry(&db, &order, 2925, None).unwrap(), None, "nearly over and no new one allowed");
        assert_eq!(session_expiry(&db, &order, 2925, Some(2925 + 1920)).unwrap(), Some(4845), "nearly over: a new session");
    }

    /// The success page's return asks Stripe about a session at most once
    /// per interval; a call that got no answer gives its turn back.
    #[test]
    fn stripe_is_asked_about_a_session_at_most_once_per_interval() {
        use crate::ledger::{release_stripe_check, take_stripe_check};
        let db = MemDb::new();
        let order = order(&db);
        record_created(&db, &order, Kind::CheckoutSession, "cs_1", Some(5000)).unwrap();
        assert!(take_stripe_check(&db, "cs_1", 1000, 2).unwrap(), "never asked: ask");
        assert!(!take_stripe_check(&db, "cs_1", 1000, 2).unwrap(), "just asked");
        assert!(!take_stripe_check(&db, "cs_1", 1001, 2).unwrap(), "within the interval");
        assert!(take_stripe_check(&db, "cs_1", 1002, 2).unwrap(), "the interval is over");
        release_stripe_check(&db, "cs_1", 1002).unwrap();
        assert!(take_stripe_check(&db, "cs_1", 1002, 2).unwrap(), "no answer: the next call asks again");
        release_stripe_check(&db, "cs_1", 1000).unwrap();
        assert!(!take_stripe_check(&db, "cs_1", 1003, 2).unwrap(), "an old turn's release frees nothing");
        assert!(!take_stripe_check(&db, "cs_unknown", 1000, 2).unwrap(), "no such object: nothing to ask about");
    }
}
