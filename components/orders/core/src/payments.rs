//! Applying payment outcomes to orders: idempotent and monotonic.
//!
//! The Stripe webhook, the success-page return and the sweep all end here.
//! Each outcome is applied inside one write transaction that first re-reads
//! the order, so concurrent deliveries of the same outcome (the return and
//! the webhook at once, or a webhook delivered twice) change the order once,
//! commit the stock once and write one outbox event. An outcome that
//! arrives after a later state was reached never moves the order backwards.

use crate::domain::Status;
use crate::orders::{self, Order, OrderError};
use serde::Serialize;
use serde_json::json;
use storage::{transaction, Db, DbError};

/// What happened to the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The money arrived: this amount and currency.
    Paid { amount_minor: i64, currency: String, payment_intent: Option<String> },
    /// The shop ends the order unpaid (the customer cancels it): cancel it
    /// and give its stock back.
    Failed,
    /// The order's stock hold lapsed unpaid: expire it.
    Expired,
    /// One payment attempt ended without money (a declined card, a Checkout
    /// Session that expired, an intent cancelled, a delayed method that
    /// failed). In Stripe's terms the customer may still pay — another
    /// card, a new session — so the order stays `pending_payment` until its
    /// own hold lapses; only the payment record shows the attempt.
    AttemptEnded { payment_status: &'static str },
    /// Refunds so far total this much.
    Refunded { total_refunded: i64 },
}

/// Checkout's view of the inventory contract.
pub trait Inventory {
    /// Turn the order's reservation into a sale. `Ok(false)` when the
    /// reservation lapsed and its stock is gone.
    fn commit(&self, order_id: &str) -> Result<bool, String>;
    /// Give the order's stock back.
    fn release(&self, order_id: &str) -> Result<(), String>;
}

/// What applying an outcome did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Applied {
    Changed { status: Status },
    Unchanged { status: Status },
    /// Not applied; an admin must look (amount mismatch, paid after cancel...).
    Flagged { problem: String },
    /// This Stripe event was processed before.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PaymentError {
    UnknownOrder,
    /// The inventory could not be reached: nothing changed; retry.
    InventoryUnavailable(String),
    Storage(DbError),
}

impl From<DbError> for PaymentError {
    fn from(e: DbError) -> Self {
        Self::Storage(e)
    }
}

impl From<OrderError> for PaymentError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::NotFound => Self::UnknownOrder,
            OrderError::Storage(d) => Self::Storage(d),
            // `apply` only asks for allowed transitions.
            OrderError::Transition(t) => Self::Storage(DbError::Other(t.to_string())),
        }
    }
}

/// Record a Stripe event id; false if it was seen before.
fn first_sighting(tx: &dyn Db, event: Option<(&str, &str)>, order_id: &str) -> Result<bool, DbError> {
    let Some((id, kind)) = event else { return Ok(true) };
    let rows = tx.query(
        "INSERT INTO stripe_events (id, type, order_id, outcome, received_at) VALUES (?, ?, ?, 'processed', ?) \
         ON CONFLICT (id) DO NOTHING RETURNING id",
        &[id.into(), kind.into(), order_id.into(), clock::now_rfc3339().into()],
    )?;
    Ok(!rows.is_empty())
}

/// Apply `outcome` to an order. `event` is the Stripe event (id, type) when
/// the outcome came from a webhook, so it is processed at most once.
pub fn apply(db: &dyn Db, order_id: &str, outcome: &Outcome, event: Option<(&str, &str)>, actor: &str, inventory: &dyn Inventory) -> Result<Applied, PaymentError> {
    transaction(db, |tx| {
        if !first_sighting(tx, event, order_id)? {
            return Ok(Applied::Duplicate);
        }
        let order = orders::load_locked(tx, order_id)?.ok_or(PaymentError::UnknownOrder)?;
        let reason = event.map(|(_, kind)| kind).unwrap_or(actor);
        match outcome {
            Outcome::Paid { amount_minor, currency, payment_intent } => {
                if let Some(pi) = payment_intent {
                    tx.execute(
                        "UPDATE payments SET payment_intent = COALESCE(payment_intent, ?) WHERE order_id = ?",
                        &[pi.as_str().into(), order_id.into()],
                    )?;
                }
                paid(tx, &order, *amount_minor, currency, payment_intent.as_deref(), actor, reason, inventory)
            }
            Outcome::Failed => give_back(tx, &order, Status::Cancelled, actor, reason, inventory),
            Outcome::Expired => give_back(tx, &order, Status::Expired, actor, reason, inventory),
            Outcome::AttemptEnded { payment_status } => {
                // Never over a final payment state (a late event about an
                // old attempt of a paid order).
                tx.execute(
                    "UPDATE payments SET status = ?, updated_at = ? WHERE order_id = ? AND status NOT IN ('paid', 'refunded', 'partially_refunded')",
                    &[(*payment_status).into(), clock::now_rfc3339().into(), order_id.into()],
                )?;
                Ok(Applied::Unchanged { status: order.status })
            }
            Outcome::Refunded { total_refunded } => refunded(tx, &order, *total_refunded, actor, reason),
        }
    })
}

fn set_payment_status(tx: &dyn Db, order_id: &str, status: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE payments SET status = ?, updated_at = ? WHERE order_id = ?",
        &[status.into(), clock::now_rfc3339().into(), order_id.into()],
    )
}

fn paid(
    tx: &dyn Db,
    order: &Order,
    amount: i64,
    currency: &str,
    intent: Option<&str>,
    actor: &str,
    reason: &str,
    inventory: &dyn Inventory,
) -> Result<Applied, PaymentError> {
    if order.status.is_paid() || order.status == Status::Refunded {
        // The same payment again (the return and the webhook, or Checkout's
        // session and intent events) changes nothing; money through another
        // PaymentIntent is a second payment, returned automatically.
        let paying = payment_for(tx, &order.id)?.and_then(|p| p.payment_intent);
        return match (intent, paying) {
            (Some(new), Some(paying)) if new != paying => {
                owe_back(tx, order, new, amount, currency, "paid_twice")?;
                Ok(Applied::Flagged { problem: "paid_twice".into() })
            }
            _ => Ok(Applied::Unchanged { status: order.status }),
        };
    }
    if matches!(order.status, Status::Cancelled | Status::Expired) {
        // Its stock is gone and the order is final: the money goes back.
        let problem = format!("paid_after_{}", order.status);
        match intent {
            Some(new) => owe_back(tx, order, new, amount, currency, &problem)?,
            None => orders::flag(tx, order, &problem)?,
        }
        return Ok(Applied::Flagged { problem });
    }
    if amount != order.total.amount_minor || !currency.eq_ignore_ascii_case(order.total.currency.code()) {
        let problem = "amount_mismatch".to_string();
        orders::flag(tx, order, &problem)?;
        orders::record_event(tx, "order.flagged", &format!("{}:{problem}", order.id), &json!({
            "order_id": order.id, "problem": problem, "expected": order.total,
            "received": { "amount_minor": amount, "currency": currency.to_uppercase() },
        }))?;
        return Ok(Applied::Flagged { problem });
    }
    // The stock is committed while this transaction holds the order, so a
    // concurrent delivery of the same payment waits and then sees it paid.
    let stock_ok = inventory.commit(&order.id).map_err(PaymentError::InventoryUnavailable)?;
    if !stock_ok {
        orders::flag(tx, order, "stock_unavailable")?;
    }
    set_payment_status(tx, &order.id, "paid")?;
    if let Some(pi) = intent {
        // Refunds go to the intent that captured the money, not to an
        // earlier attempt recorded when payment started.
        tx.execute("UPDATE payments SET payment_intent = ? WHERE order_id = ?", &[pi.into(), order.id.as_str().into()])?;
    }
    let updated = orders::transition(tx, order, Status::Paid, actor, reason)?;
    Ok(Applied::Changed { status: updated.status })
}

/// Record money the order cannot keep (`reason`: `paid_after_expired`,
/// `paid_after_cancelled`, `paid_twice`) for an automatic refund, once per
/// PaymentIntent, and flag the order for an admin. The refund itself is
/// sent after this transaction ([`refund_owed`]).
fn owe_back(tx: &dyn Db, order: &Order, intent: &str, amount: i64, currency: &str, reason: &str) -> Result<(), DbError> {
    orders::flag(tx, order, reason)?;
    if amount < 1 {
        return Ok(());
    }
    let now = clock::now_rfc3339();
    tx.execute(
        "INSERT INTO automatic_refunds (payment_intent, order_id, amount_minor, currency, reason, status, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (payment_intent) DO NOTHING",
        &[intent.into(), order.id.as_str().into(), amount.into(), currency.to_ascii_uppercase().into(), reason.into(), now.as_str().into(), now.as_str().into()],
    )
}

/// A refund the shop owes: money that arrived for an order that could not
/// take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutomaticRefund {
    pub payment_intent: String,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
    /// `pending` (being sent, or Stripe could not be reached yet),
    /// `refunded`, or `failed` (Stripe refused it: an admin must act).
    pub status: String,
    pub attempts: i64,
    pub stripe_refund: Option<String>,
    pub last_error: Option<String>,
}

fn automatic_refund(r: &storage::Row) -> Result<AutomaticRefund, DbError> {
    Ok(AutomaticRefund {
        payment_intent: r.text("payment_intent")?,
        order_id: r.text("order_id")?,
        amount_minor: r.int("amount_minor")?,
        currency: r.text("currency")?,
        reason: r.text("reason")?,
        status: r.text("status")?,
        attempts: r.int("attempts")?,
        stripe_refund: r.opt_text("stripe_refund")?,
        last_error: r.opt_text("last_error")?,
    })
}

/// The automatic refunds of one order.
pub fn automatic_refunds(db: &dyn Db, order_id: &str) -> Result<Vec<AutomaticRefund>, DbError> {
    db.query("SELECT * FROM automatic_refunds WHERE order_id = ? ORDER BY created_at, payment_intent", &[order_id.into()])?
        .iter()
        .map(|r| automatic_refund(&r))
        .collect()
}

/// Stop retrying an automatic refund after this many attempts Stripe could
/// not answer; it is then `failed` for an admin.
pub const MAX_REFUND_ATTEMPTS: i64 = 20;

/// Send the pending automatic refunds (of one order, or up to `limit` of
/// all) to Stripe: a full refund of that PaymentIntent, Idempotency-Key
/// `auto-refund:<intent>`, so a retry or two instances at once refund once.
/// Stripe refusing it marks it `failed` and flags the order
/// (`automatic_refund_failed`); Stripe unreachable leaves it `pending` for
/// the next sweep. Each refund done writes an `order.payment_returned`
/// event (the customer's email). Returns how many were refunded.
pub fn refund_owed(db: &dyn Db, stripe: &crate::stripe::StripeConfig, order_id: Option<&str>, limit: u32) -> Result<usize, DbError> {
    if !stripe.configured() {
        return Ok(0);
    }
    let rows = match order_id {
        Some(id) => db.query("SELECT * FROM automatic_refunds WHERE status = 'pending' AND order_id = ?", &[id.into()])?,
        None => db.query(
            "SELECT * FROM automatic_refunds WHERE status = 'pending' ORDER BY created_at LIMIT ?",
            &[(limit as i64).into()],
        )?,
    };
    let owed: Vec<AutomaticRefund> = rows.iter().map(|r| automatic_refund(&r)).collect::<Result<_, _>>()?;
    let mut done = 0;
    for r in owed {
        let fields = vec![
            ("payment_intent".to_string(), r.payment_intent.clone()),
            ("amount".to_string(), r.amount_minor.to_string()),
            ("reason".to_string(), if r.reason == "paid_twice" { "duplicate" } else { "requested_by_customer" }.to_string()),
            ("metadata[order_id]".to_string(), r.order_id.clone()),
            ("metadata[automatic_refund]".to_string(), r.reason.clone()),
        ];
        let now = clock::now_rfc3339();
        match stripe.post("/v1/refunds", &fields, &format!("auto-refund:{}", r.payment_intent)) {
            Ok(refund) => {
                let refund_id = refund["id"].as_str().unwrap_or("").to_string();
                let changed = transaction(db, |tx| -> Result<bool, DbError> {
                    let moved = tx.query(
                        "UPDATE automatic_refunds SET status = 'refunded', stripe_refund = ?, attempts = attempts + 1, updated_at = ? \
                         WHERE payment_intent = ? AND status = 'pending' RETURNING payment_intent",
                        &[refund_id.as_str().into(), now.as_str().into(), r.payment_intent.as_str().into()],
                    )?;
                    if moved.is_empty() {
                        return Ok(false);
                    }
                    let order = orders::load(tx, &r.order_id)?;
                    orders::record_event(tx, "order.payment_returned", &r.payment_intent, &json!({
                        "order_id": r.order_id,
                        "user_id": order.as_ref().map(|o| o.user_id.clone()),
                        "reason": r.reason,
                        "amount": { "amount_minor": r.amount_minor, "currency": r.currency },
                        "order": order,
                    }))?;
                    Ok(true)
                })?;
                done += usize::from(changed);
            }
            Err(crate::stripe::StripeError::Rejected { message, .. }) => {
                transaction(db, |tx| -> Result<(), DbError> {
                    tx.execute(
                        "UPDATE automatic_refunds SET status = 'failed', last_error = ?, attempts = attempts + 1, updated_at = ? \
                         WHERE payment_intent = ? AND status = 'pending'",
                        &[message.as_str().into(), now.as_str().into(), r.payment_intent.as_str().into()],
                    )?;
                    if let Some(order) = orders::load(tx, &r.order_id)? {
                        orders::flag(tx, &order, "automatic_refund_failed")?;
                    }
                    Ok(())
                })?;
            }
            Err(e) => {
                db.execute(
                    "UPDATE automatic_refunds SET attempts = attempts + 1, last_error = ?, updated_at = ?, \
                     status = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE status END \
                     WHERE payment_intent = ? AND status = 'pending'",
                    &[format!("{e:?}").into(), now.as_str().into(), MAX_REFUND_ATTEMPTS.into(), r.payment_intent.as_str().into()],
                )?;
            }
        }
    }
    Ok(done)
}

fn give_back(tx: &dyn Db, order: &Order, to: Status, actor: &str, reason: &str, inventory: &dyn Inventory) -> Result<Applied, PaymentError> {
    if order.status != Status::PendingPayment {
        // Already paid (a late failure/expiry) or already closed: monotonic.
        return Ok(Applied::Unchanged { status: order.status });
    }
    inventory.release(&order.id).map_err(PaymentError::InventoryUnavailable)?;
    set_payment_status(tx, &order.id, "failed")?;
    // Whatever Stripe object could still take money for it is closed after
    // this transaction ([`close_at_stripe`]).
    tx.execute(
        "UPDATE payments SET stripe_cleanup = 'due' WHERE order_id = ? AND (checkout_session IS NOT NULL OR payment_intent IS NOT NULL)",
        &[order.id.as_str().into()],
    )?;
    let updated = orders::transition(tx, order, to, actor, reason)?;
    Ok(Applied::Changed { status: updated.status })
}

/// Close the Stripe objects of ended unpaid orders (one order, or up to
/// `limit` of all): `POST /v1/checkout/sessions/{id}/expire` for its
/// Checkout Session and `POST /v1/payment_intents/{id}/cancel` for a
/// PaymentIntent it created itself (Checkout's own intents end with their
/// session). Stripe refusing because the object is already closed counts as
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
    for r in rows.iter() {
        let order = r.text("order_id")?;
        let session = r.opt_text("checkout_session")?;
        // An intent recorded before payment is one this shop created;
        // Checkout's intents are recorded only when they pay.
        let intent = r.opt_text("payment_intent")?;
        let mut done = true;
        let mut call = |path: String, key: String| match stripe.post(&path, &[], &key) {
            Ok(_) | Err(crate::stripe::StripeError::Rejected { .. }) | Err(crate::stripe::StripeError::Unexpected(_)) => {}
            Err(crate::stripe::StripeError::Unavailable(_)) => done = false,
        };
        if let Some(s) = &session {
            call(format!("/v1/checkout/sessions/{s}/expire"), format!("expire:{s}"));
        }
        if let Some(pi) = &intent {
            call(format!("/v1/payment_intents/{pi}/cancel"), format!("cancel:{pi}"));
        }
        if done {
            db.execute("UPDATE payments SET stripe_cleanup = 'done' WHERE order_id = ? AND stripe_cleanup = 'due'", &[order.as_str().into()])?;
            closed += 1;
        }
    }
    Ok(closed)
}

fn refunded(tx: &dyn Db, order: &Order, total_refunded: i64, actor: &str, reason: &str) -> Result<Applied, PaymentError> {
    if total_refunded <= order.refunded.amount_minor {
        return Ok(Applied::Unchanged { status: order.status });
    }
    orders::set_refunded(tx, &order.id, total_refunded)?;
    tx.execute(
        &format!("UPDATE payments SET amount_refunded = {}(amount_refunded, ?), updated_at = ? WHERE order_id = ?", tx.dialect().greatest()),
        &[total_refunded.into(), clock::now_rfc3339().into(), order.id.as_str().into()],
    )?;
    let full = total_refunded >= order.total.amount_minor;
    set_payment_status(tx, &order.id, if full { "refunded" } else { "partially_refunded" })?;
    if full && order.status.can_become(Status::Refunded) {
        let updated = orders::transition(tx, order, Status::Refunded, actor, reason)?;
        return Ok(Applied::Changed { status: updated.status });
    }
    // A partial refund leaves fulfilment alone: a paid, processing or
    // shipped order goes on as before, with its `refunded` amount raised
    // (refunding one line must not freeze the rest). The same holds for an
    // order whose status cannot become `refunded` (a cancelled one): the
    // amount is recorded, the status stays. The customer is told either way.
    let updated = orders::load(tx, &order.id)?.ok_or(PaymentError::UnknownOrder)?;
    orders::record_event(tx, "order.refunded", &format!("{}:{total_refunded}", order.id), &json!({
        "order_id": order.id, "user_id": order.user_id, "status": updated.status, "order": updated,
    }))?;
    Ok(Applied::Changed { status: updated.status })
}

/// Why a refund could not be made.
#[derive(Debug, Clone, PartialEq)]
pub enum RefundError {
    /// Nothing (or less than asked) is left to refund: the refundable amount.
    TooMuch { refundable: i64 },
    /// The order was never paid through a PaymentIntent we know.
    NotPaid,
    Stripe(crate::stripe::StripeError),
    Payment(PaymentError),
}

/// Refund `amount` (default: everything not yet refunded) through Stripe,
/// then record it. The Stripe call carries `idempotency_key`, so a retried
/// request refunds once.
pub fn refund_via_stripe(
    db: &dyn Db,
    stripe: &crate::stripe::StripeConfig,
    order: &Order,
    amount: Option<i64>,
    idempotency_key: &str,
    actor: &str,
    inventory: &dyn Inventory,
) -> Result<Applied, RefundError> {
    let refundable = order.total.amount_minor - order.refunded.amount_minor;
    let amount = amount.unwrap_or(refundable);
    if amount < 1 || amount > refundable {
        return Err(RefundError::TooMuch { refundable });
    }
    let payment = payment_for(db, &order.id).map_err(|e| RefundError::Payment(e.into()))?;
    // Only money that was captured can go back: an order cancelled before
    // it was paid has an intent on record, but nothing to refund.
    let captured = payment.as_ref().is_some_and(|p| matches!(p.status.as_str(), "paid" | "partially_refunded" | "refunded"));
    let Some(intent) = payment.and_then(|p| p.payment_intent).filter(|_| captured) else { return Err(RefundError::NotPaid) };
    let fields = vec![
        ("payment_intent".to_string(), intent.clone()),
        ("amount".to_string(), amount.to_string()),
        ("metadata[order_id]".to_string(), order.id.clone()),
    ];
    let refund = stripe.post("/v1/refunds", &fields, idempotency_key).map_err(RefundError::Stripe)?;
    // Count each Stripe refund once, by its id: a replayed request (same
    // Idempotency-Key) returns the same refund and adds nothing.
    // Stripe's answer is checked before anything is recorded from it.
    let (Some(refund_id), Some(refunded_amount)) = (refund["id"].as_str().filter(|id| !id.is_empty()), refund["amount"].as_i64()) else {
        return Err(RefundError::Stripe(crate::stripe::StripeError::Unexpected("a refund without an id or amount".into())));
    };
    if !(1..=amount).contains(&refunded_amount) {
        return Err(RefundError::Stripe(crate::stripe::StripeError::Unexpected(format!(
            "a refund of {refunded_amount} where {amount} was asked"
        ))));
    }
    let refund_id = refund_id.to_string();
    let (total, new_refund) = transaction(db, |tx| -> Result<(i64, bool), DbError> {
        let inserted = tx.query(
            "INSERT INTO refunds (id, order_id, amount_minor, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
            &[refund_id.as_str().into(), order.id.as_str().into(), refunded_amount.into(), clock::now_rfc3339().into()],
        )?;
        let sum = tx
            .query("SELECT COALESCE(SUM(amount_minor), 0) AS total FROM refunds WHERE order_id = ?", &[order.id.as_str().into()])?
            .first()
            .map(|r| r.int("total"))
            .transpose()?
            .unwrap_or(0);
        Ok((sum, !inserted.is_empty()))
    })
    .map_err(|e| RefundError::Payment(e.into()))?;
    // This refund on top of what was known (including dashboard refunds seen
    // in `charge.refunded`), counted only the first time it is recorded.
    let known = order.refunded.amount_minor + if new_refund { refunded_amount } else { 0 };
    // Stripe's own total for the charge counts refunds made outside the shop
    // too (its dashboard), which our refund rows cannot know; ours is the
    // floor when Stripe cannot be asked now (the next `charge.refunded`
    // event brings the exact total).
    let at_stripe = refunded_at_stripe(stripe, &intent).unwrap_or(0);
    let total = total.max(known).max(at_stripe).min(order.total.amount_minor);
    apply(db, &order.id, &Outcome::Refunded { total_refunded: total }, None, actor, inventory).map_err(RefundError::Payment)
}

/// The refunded total of the charge that captured `intent`'s money, as
/// Stripe reports it (`latest_charge.amount_refunded`).
fn refunded_at_stripe(stripe: &crate::stripe::StripeConfig, intent: &str) -> Option<i64> {
    let pi = stripe.get(&format!("/v1/payment_intents/{intent}?expand[]=latest_charge")).ok()?;
    pi["latest_charge"]["amount_refunded"].as_i64().filter(|a| *a >= 0)
}

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
pub fn record_payment(db: &dyn Db, order: &Order, session: Option<&str>, intent: Option<&str>) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO payments (order_id, checkout_session, payment_intent, status, amount_minor, currency, updated_at) \
         VALUES (?, ?, ?, 'awaiting_payment', ?, ?, ?) \
         ON CONFLICT (order_id) DO UPDATE SET \
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
/// Idempotency-Key. A new expiry is chosen only when the previous session
/// is (nearly) over.
pub fn session_expiry(db: &dyn Db, order: &Order, now: i64, choose: i64) -> Result<i64, DbError> {
    transaction(db, |tx| {
        record_payment(tx, order, None, None)?;
        if tx.dialect() == storage::Dialect::Postgres {
            // Concurrent session requests choose one expiry between them.
            tx.execute("SELECT order_id FROM payments WHERE order_id = ? FOR UPDATE", &[order.id.as_str().into()])?;
        }
        let current = payment_for(tx, &order.id)?.and_then(|p| p.session_expires_at);
        match current {
            Some(t) if t > now + 60 => Ok(t),
            _ => {
                tx.execute("UPDATE payments SET session_expires_at = ? WHERE order_id = ?", &[choose.into(), order.id.as_str().into()])?;
                Ok(choose)
            }
        }
    })
}

/// The order a payment intent or checkout session belongs to.
pub fn order_of(db: &dyn Db, session: Option<&str>, intent: Option<&str>) -> Result<Option<String>, DbError> {
    let rows = db.query(
        "SELECT order_id FROM payments WHERE (checkout_session IS NOT NULL AND checkout_session = ?) \
         OR (payment_intent IS NOT NULL AND payment_intent = ?) LIMIT 1",
        &[session.into(), intent.into()],
    )?;
    rows.first().map(|r| r.text("order_id")).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::{insert, NewOrder, OrderLine};
    use money::{Currency, Money};
    use std::cell::RefCell;
    use storage::native::MemDb;

    #[derive(Default)]
    struct FakeInventory {
        calls: RefCell<Vec<String>>,
        stock_gone: bool,
    }

    impl Inventory for FakeInventory {
        fn commit(&self, order_id: &str) -> Result<bool, String> {
            self.calls.borrow_mut().push(format!("commit {order_id}"));
            Ok(!self.stock_gone)
        }
        fn release(&self, order_id: &str) -> Result<(), String> {
            self.calls.borrow_mut().push(format!("release {order_id}"));
            Ok(())
        }
    }

    fn setup() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let usd = Currency::parse("USD").unwrap();
        let line = OrderLine { product_id: "p".into(), sku: "S".into(), name: "N".into(), unit_price: Money::new(500, usd), quantity: 2, line_total: Money::new(1000, usd) };
        let order = insert(&db, &NewOrder { id: "o1".into(), user_id: "u".into(), currency: usd, lines: vec![line], shipping_address: None, expires_at: 10 }, "u").unwrap();
        record_payment(&db, &order, Some("cs_1"), None).unwrap();
        db
    }

    fn paid() -> Outcome {
        Outcome::Paid { amount_minor: 1000, currency: "usd".into(), payment_intent: Some("pi_1".into()) }
    }

    fn status(db: &MemDb) -> Status {
        orders::load(db, "o1").unwrap().unwrap().status
    }

    fn outbox(db: &MemDb, kind: &str) -> i64 {
        db.query("SELECT COUNT(*) AS n FROM outbox WHERE event_type = ?", &[kind.into()]).unwrap().first().unwrap().int("n").unwrap()
    }

    #[test]
    fn paid_once_even_when_delivered_twice() {
        let db = setup();
        let inv = FakeInventory::default();
        assert_eq!(apply(&db, "o1", &paid(), Some(("evt_1", "checkout.session.completed")), "stripe", &inv).unwrap(), Applied::Changed { status: Status::Paid });
        assert_eq!(apply(&db, "o1", &paid(), Some(("evt_1", "checkout.session.completed")), "stripe", &inv).unwrap(), Applied::Duplicate);
        assert_eq!(apply(&db, "o1", &paid(), None, "return", &inv).unwrap(), Applied::Unchanged { status: Status::Paid });
        assert_eq!(inv.calls.borrow().as_slice(), ["commit o1"]);
        assert_eq!(outbox(&db, "order.paid"), 1);
        assert_eq!(order_of(&db, None, Some("pi_1")).unwrap().as_deref(), Some("o1"));
    }

    #[test]
    fn late_failures_never_move_a_paid_order_back() {
        let db = setup();
        let inv = FakeInventory::default();
        apply(&db, "o1", &paid(), None, "stripe", &inv).unwrap();
        assert_eq!(apply(&db, "o1", &Outcome::Expired, Some(("evt_2", "checkout.session.expired")), "stripe", &inv).unwrap(), Applied::Unchanged { status: Status::Paid });
        assert_eq!(status(&db), Status::Paid);
        assert!(!inv.calls.borrow().iter().any(|c| c.starts_with("release")));
    }

    #[test]
    fn expiry_releases_stock_and_a_late_payment_is_flagged() {
        let db = setup();
        let inv = FakeInventory::default();
        assert_eq!(apply(&db, "o1", &Outcome::Expired, None, "sweep", &inv).unwrap(), Applied::Changed { status: Status::Expired });
        assert_eq!(apply(&db, "o1", &paid(), None, "stripe", &inv).unwrap(), Applied::Flagged { problem: "paid_after_expired".into() });
        assert_eq!(status(&db), Status::Expired);
        assert_eq!(orders::load(&db, "o1").unwrap().unwrap().flags, vec!["paid_after_expired".to_string()]);
    }

    #[test]
    fn amount_mismatch_is_flagged_not_paid() {
        let db = setup();
        let inv = FakeInventory::default();
        let short = Outcome::Paid { amount_minor: 999, currency: "usd".into(), payment_intent: None };
        assert_eq!(apply(&db, "o1", &short, None, "stripe", &inv).unwrap(), Applied::Flagged { problem: "amount_mismatch".into() });
        let wrong_currency = Outcome::Paid { amount_minor: 1000, currency: "eur".into(), payment_intent: None };
        assert!(matches!(apply(&db, "o1", &wrong_currency, None, "stripe", &inv).unwrap(), Applied::Flagged { .. }));
        assert_eq!(status(&db), Status::PendingPayment);
        assert!(inv.calls.borrow().is_empty());
    }

    #[test]
    fn refunds_are_partial_then_full_and_monotonic() {
        let db = setup();
        let inv = FakeInventory::default();
        apply(&db, "o1", &paid(), None, "stripe", &inv).unwrap();
        assert_eq!(apply(&db, "o1", &Outcome::Refunded { total_refunded: 400 }, Some(("e1", "charge.refunded")), "stripe", &inv).unwrap(), Applied::Changed { status: Status::Paid }, "a partial refund leaves fulfilment alone");
        assert_eq!(apply(&db, "o1", &Outcome::Refunded { total_refunded: 300 }, Some(("e0", "charge.refunded")), "stripe", &inv).unwrap(), Applied::Unchanged { status: Status::Paid }, "an older event");
        assert_eq!(orders::load(&db, "o1").unwrap().unwrap().refunded.amount_minor, 400);
        assert_eq!(apply(&db, "o1", &Outcome::Refunded { total_refunded: 1000 }, Some(("e2", "charge.refunded")), "stripe", &inv).unwrap(), Applied::Changed { status: Status::Refunded });
        assert_eq!(outbox(&db, "order.refunded"), 2);
    }

    #[test]
    fn lost_stock_is_flagged_but_the_payment_counts() {
        let db = setup();
        let inv = FakeInventory { stock_gone: true, ..Default::default() };
        apply(&db, "o1", &paid(), None, "stripe", &inv).unwrap();
        let o = orders::load(&db, "o1").unwrap().unwrap();
        assert_eq!((o.status, o.flags), (Status::Paid, vec!["stock_unavailable".to_string()]));
    }
}
