//! How a payment moves its order: idempotent and monotonic.
//!
//! The Stripe webhook, the success-page return, the sweep and the shop's
//! own decisions (cancel, expire) all end here. Each is applied inside one
//! write transaction that first records the Stripe event (at most once),
//! then records what it says about each Stripe object in the ledger
//! ([`crate::ledger`]), then re-reads the order under a lock, so concurrent
//! deliveries of the same outcome (the return and the webhook at once, or a
//! webhook delivered twice) change the order once and write one outbox
//! event. A payment's stock is sold once, after that transaction (it owes
//! the sale, [`orders_core::owed_stock`]), and an order that ends unpaid
//! releases its hold the same way, so the checkout database is not held
//! while the catalog is asked. An outcome that arrives after a later
//! state was reached never moves the order backwards.
//!
//! Stripe's semantics, as checkout applies them:
//! - money captured for a `pending_payment` order pays it;
//! - a failed attempt (declined card, expired session, canceled intent) is
//!   recorded on its object and leaves the order payable until its hold lapses;
//! - money captured for an order that ended unpaid is honoured when the
//!   order only expired and its units are all still free (they are sold
//!   again and the order is paid), and refunded in full otherwise (a
//!   cancelled order, stock gone, `late_payments=refund`);
//! - money captured through a second PaymentIntent of a paid order is
//!   refunded in full;
//! - a refund counts towards the order only when it returns money of the
//!   intent that paid for it.

use crate::ledger;
use orders_core::domain::Status;
use orders_core::inventory_client::Inventory;
use orders_core::invoices::InvoiceSettings;
use orders_core::orders::{self, Order, OrderError};
use orders_core::owed_stock::SettleError;
use serde::Serialize;
use serde_json::{json, Value as Json};
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
    /// own hold lapses; only the object (and, when it is the order's current
    /// one, the payment summary) shows the attempt.
    AttemptEnded { payment_status: &'static str, object: Option<String> },
    /// The charge of `payment_intent` has this much refunded in all.
    Refunded { total_refunded: i64, payment_intent: Option<String> },
    /// A refund's status changed at Stripe (the event's object says how):
    /// one that returned nothing in the end (`failed`, `canceled`) is
    /// money the customer did not get back.
    RefundChanged { refund: String },
    /// A card dispute of the order's payment was opened, changed or closed
    /// (`charge.dispute.*`): see [`orders_core::disputes`].
    Disputed(orders_core::disputes::Told),
}

/// Where an outcome comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A signed Stripe event: processed at most once by its id, and what it
    /// says about its objects is recorded in the ledger.
    Event { id: &'a str, kind: &'a str, object: &'a Json },
    /// A Stripe object the shop fetched itself (the success page's session),
    /// read as an event of type `kind` would be.
    Fetched { kind: &'a str, object: &'a Json },
    /// The shop's own decision (expiry, cancellation, a refund it made).
    Shop,
}

impl Source<'_> {
    fn event(&self) -> Option<(&str, &str)> {
        match self {
            Source::Event { id, kind, .. } => Some((id, kind)),
            _ => None,
        }
    }
}

/// What to do with money that arrives for an order that expired unpaid
/// (the `late_payments` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatePayments {
    /// Sell the units again when they are all still free and pay the order;
    /// refund otherwise. The default.
    Honour,
    /// Always refund.
    Refund,
}

impl LatePayments {
    pub const VALUES: [&'static str; 2] = ["honour", "refund"];

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "honour" => Some(Self::Honour),
            "refund" => Some(Self::Refund),
            _ => None,
        }
    }

    /// From the Spin variable (a bad value is reported by `/health`; the
    /// default applies meanwhile).
    pub fn from_variables() -> Self {
        Self::parse(&spin_sdk::variables::get("late_payments").unwrap_or_default()).unwrap_or(Self::Honour)
    }
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
    /// The inventory could not be reached; retry. Nothing changed, except
    /// for a payment of a Stripe event: the order is paid and its sale is
    /// owed ([`orders_core::owed_stock`]) until the event comes again or the
    /// orders sweep runs.
    InventoryUnavailable(String),
    /// The event names a Stripe object recorded for another order: nothing
    /// changed.
    ObjectOfAnotherOrder { id: String, order_id: String },
    Storage(DbError),
}

impl From<DbError> for PaymentError {
    fn from(e: DbError) -> Self {
        Self::Storage(e)
    }
}

impl From<ledger::LedgerError> for PaymentError {
    fn from(e: ledger::LedgerError) -> Self {
        match e {
            ledger::LedgerError::HeldByAnotherOrder { id, order_id } => Self::ObjectOfAnotherOrder { id, order_id },
            ledger::LedgerError::Storage(d) => Self::Storage(d),
        }
    }
}

impl From<OrderError> for PaymentError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::NotFound => Self::UnknownOrder,
            OrderError::Storage(d) => Self::Storage(d),
            // `apply` only asks for allowed transitions.
            OrderError::Transition(t) => Self::Storage(DbError::Other(t.to_string())),
            OrderError::CartOrdered => Self::Storage(DbError::Other("the cart is an order already".into())),
            OrderError::Disputed(_) => Self::Storage(DbError::Other("the order is disputed".into())),
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

/// Record in the ledger what an event (or a fetched object) says about the
/// order's Stripe objects.
fn record_sightings(tx: &dyn Db, order_id: &str, source: &Source) -> Result<(), PaymentError> {
    let (Source::Event { kind, object, .. } | Source::Fetched { kind, object }) = source else { return Ok(()) };
    for (k, id, status, seen) in ledger::sightings(kind, object) {
        ledger::record(tx, order_id, k, id, status, "event", &seen)?;
    }
    Ok(())
}

/// Apply `outcome` to an order, with the default late-payment policy.
pub fn apply(db: &dyn Db, order_id: &str, outcome: &Outcome, source: Source, actor: &str, inventory: &dyn Inventory) -> Result<Applied, PaymentError> {
    apply_with(db, order_id, outcome, source, actor, inventory, LatePayments::from_variables())
}

/// [`apply`] with an explicit late-payment policy.
pub fn apply_with(
    db: &dyn Db,
    order_id: &str,
    outcome: &Outcome,
    source: Source,
    actor: &str,
    inventory: &dyn Inventory,
    late: LatePayments,
) -> Result<Applied, PaymentError> {
    let watched = SaleWatch { inner: inventory, sold: std::cell::Cell::new(false) };
    let inventory: &dyn Inventory = &watched;
    let applied = transaction(db, |tx| {
        if !first_sighting(tx, source.event(), order_id)? {
            return Ok(Applied::Duplicate);
        }
        let order = orders::load_locked(tx, order_id)?.ok_or(PaymentError::UnknownOrder)?;
        // A refund's status before this event moves it (the order's row
        // lock orders two events about it).
        let refund_before = match outcome {
            Outcome::RefundChanged { refund } => ledger::find(tx, refund)?.map(|o| o.status),
            _ => None,
        };
        record_sightings(tx, order_id, &source)?;
        let reason = source.event().map(|(_, kind)| kind).unwrap_or(actor);
        match outcome {
            Outcome::Paid { amount_minor, currency, payment_intent } => {
                paid(tx, &order, *amount_minor, currency, payment_intent.as_deref(), actor, reason, inventory, late)
            }
            Outcome::Failed => give_back(tx, &order, Status::Cancelled, actor, reason),
            Outcome::Expired => give_back(tx, &order, Status::Expired, actor, reason),
            Outcome::AttemptEnded { payment_status, object } => {
                // Only the order's current session or intent speaks for the
                // payment as a whole, and never over a final state (a late
                // event about an old attempt of a paid order).
                let mut sql = "UPDATE payments SET status = ?, updated_at = ? WHERE order_id = ? \
                               AND status NOT IN ('paid', 'refunded', 'partially_refunded')"
                    .to_string();
                let mut params: Vec<storage::Value> = vec![(*payment_status).into(), clock::now_rfc3339().into(), order_id.into()];
                if let Some(id) = object {
                    sql.push_str(" AND (checkout_session = ? OR payment_intent = ?)");
                    params.extend([id.as_str().into(), id.as_str().into()]);
                }
                tx.execute(&sql, &params)?;
                Ok(Applied::Unchanged { status: order.status })
            }
            Outcome::Refunded { total_refunded, payment_intent } => {
                let payment = crate::summary::payment_for(tx, order_id)?;
                let captured = payment.as_ref().is_some_and(|p| p.captured());
                let paying = payment.and_then(|p| p.payment_intent);
                match (payment_intent, paying) {
                    // Money of another intent went back (a second payment
                    // refunded automatically): the ledger has it; the
                    // order's own payment is untouched.
                    (Some(refunded_intent), Some(paying)) if *refunded_intent != paying => Ok(Applied::Unchanged { status: order.status }),
                    (Some(_), None) => Ok(Applied::Unchanged { status: order.status }),
                    // The order never kept money (its own intent paid after
                    // it ended, and was refunded automatically; found in
                    // review: that counted as the order's refund, with a
                    // credit note and a second refund email): the ledger
                    // has it, the order's refunded amount stays.
                    _ if !captured => Ok(Applied::Unchanged { status: order.status }),
                    _ => refunded(tx, &order, *total_refunded, actor, reason),
                }
            }
            Outcome::RefundChanged { refund } => {
                let why = match source {
                    Source::Event { object, .. } | Source::Fetched { object, .. } => object["failure_reason"].as_str().unwrap_or("unknown"),
                    Source::Shop => "unknown",
                };
                refund_undone(tx, &order, refund, refund_before.as_deref(), why)
            }
            Outcome::Disputed(told) => disputed(tx, &order, told, actor),
        }
    });
    let applied = match applied {
        Ok(applied) => applied,
        // The catalog sold the units inside a transaction that then failed
        // (a late payment honoured, or one just before the expiry): the
        // order is not paid, so their release is owed, in a transaction of
        // its own (found in review: nothing recorded it, and unless Stripe's
        // redelivery paid the order after all, the units stayed deducted).
        // A payment that pays it later forgives it; settled while the order
        // is still pending, it leaves the units sold (`owed_stock`).
        Err(e) if watched.sold.get() => {
            if let Err(owing) = transaction(db, |tx| orders_core::owed_stock::owe_release(tx, order_id)) {
                println!("{}", json!({ "level": "error", "service": "payments", "order_id": order_id, "sold_for_an_unpaid_order": owing.to_string() }));
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    // A payment or an order's end (also a repeat, such as Stripe's
    // redelivery after a request that failed before the catalog answered)
    // may owe the catalog a change of its stock; nothing else moves stock.
    let moves_stock = matches!(outcome, Outcome::Paid { .. } | Outcome::Failed | Outcome::Expired);
    if moves_stock {
        settle_stock(db, order_id, &source, inventory)?;
    }
    Ok(applied)
}

/// The inventory, noting whether the catalog sold an order's units
/// ([`Inventory::recommit`]) during a paying transaction.
struct SaleWatch<'a> {
    inner: &'a dyn Inventory,
    sold: std::cell::Cell<bool>,
}

impl Inventory for SaleWatch<'_> {
    fn commit(&self, order_id: &str) -> Result<bool, String> {
        self.inner.commit(order_id)
    }
    fn release(&self, order_id: &str) -> Result<bool, String> {
        self.inner.release(order_id)
    }
    fn return_sold(&self, order_id: &str) -> Result<(), String> {
        self.inner.return_sold(order_id)
    }
    fn recommit(&self, order_id: &str) -> Result<bool, String> {
        let sold = self.inner.recommit(order_id)?;
        if sold {
            self.sold.set(true);
        }
        Ok(sold)
    }
    fn restock(&self, order_id: &str, operation: &str, lines: &[(String, u32)]) -> Result<Vec<(String, u32)>, orders_core::inventory_client::HoldError> {
        self.inner.restock(order_id, operation, lines)
    }
}

/// Make the stock change the order owes ([`orders_core::owed_stock`]) once
/// the transaction that owed it has committed. When the catalog cannot be
/// reached, a Stripe event is answered with an error so that Stripe
/// delivers it again; any other caller goes on (the order's change stands),
/// and the orders sweep finishes it.
fn settle_stock(db: &dyn Db, order_id: &str, source: &Source, inventory: &dyn Inventory) -> Result<(), PaymentError> {
    match orders_core::owed_stock::settle(db, order_id, inventory) {
        Ok(_) => Ok(()),
        Err(SettleError::Storage(e)) => Err(e.into()),
        Err(SettleError::Unavailable(m)) if source.event().is_some() => Err(PaymentError::InventoryUnavailable(m)),
        Err(SettleError::Unavailable(m)) => {
            println!("{}", json!({ "level": "warn", "service": "payments", "order_id": order_id, "stock_change_owed": m }));
            Ok(())
        }
    }
}

/// A refund's new status is recorded: if it is the first sighting of it
/// returning nothing (Stripe could not pay it out, `failed`, or it was
/// `canceled`), the customer's money did not go back. The order is flagged
/// for an admin: `automatic_refund_failed` when it was an automatic refund
/// (whose row becomes `failed`, as when Stripe refuses one), else
/// `refund_failed_later` (not `refund_failed`, which keeps its meaning for
/// a cancellation's refund that could not be sent, found in review: the
/// cancellation sweep leaves orders with that flag alone). The order's refunded total and credit notes stand
/// (they say what the shop owes back); what can be refunded again is
/// counted without the undone refund ([`crate::refunds::refundable`]), so
/// an admin's `POST /api/payments/refund` sends it again.
fn refund_undone(tx: &dyn Db, order: &Order, refund: &str, before: Option<&str>, why: &str) -> Result<Applied, PaymentError> {
    let undone = |status: Option<&str>| status.is_some_and(ledger::refund_undone);
    let found = ledger::find(tx, refund)?;
    let now = found.as_ref().map(|o| o.status.clone());
    if !undone(now.as_deref()) || undone(before) {
        return Ok(Applied::Unchanged { status: order.status });
    }
    // An automatic refund's entry: by its refund once recorded, or still
    // pending, by the intent it returns (the event came before the shop
    // recorded Stripe's answer; found in review).
    let parent = found.and_then(|o| o.parent_id).unwrap_or_default();
    let automatic = tx.query(
        "UPDATE automatic_refunds SET status = 'failed', last_error = ?, updated_at = ? \
         WHERE (stripe_refund = ? AND status = 'refunded') OR (payment_intent = ? AND status = 'pending') RETURNING payment_intent",
        &[
            format!("Stripe's refund {refund} is {}: {why}", now.as_deref().unwrap_or("failed")).into(),
            clock::now_rfc3339().into(),
            refund.into(),
            parent.as_str().into(),
        ],
    )?;
    let problem = if automatic.is_empty() { "refund_failed_later" } else { "automatic_refund_failed" };
    orders::flag(tx, order, problem)?;
    Ok(Applied::Flagged { problem: problem.to_string() })
}

fn set_payment_status(tx: &dyn Db, order_id: &str, status: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE payments SET status = ?, updated_at = ? WHERE order_id = ?",
        &[status.into(), clock::now_rfc3339().into(), order_id.into()],
    )
}

#[allow(clippy::too_many_arguments)]
fn paid(
    tx: &dyn Db,
    order: &Order,
    amount: i64,
    currency: &str,
    intent: Option<&str>,
    actor: &str,
    reason: &str,
    inventory: &dyn Inventory,
    late: LatePayments,
) -> Result<Applied, PaymentError> {
    if order.status.is_paid() || order.status == Status::Refunded {
        // The same payment again (the return and the webhook, or Checkout's
        // session and intent events) changes nothing; money through another
        // PaymentIntent is a second payment, returned automatically.
        let paying = crate::summary::payment_for(tx, &order.id)?.and_then(|p| p.payment_intent);
        return match (intent, paying) {
            (Some(new), Some(paying)) if new != paying => {
                owe_back(tx, order, new, amount, currency, "paid_twice")?;
                Ok(Applied::Flagged { problem: "paid_twice".into() })
            }
            _ => Ok(Applied::Unchanged { status: order.status }),
        };
    }
    // Money already owed back (refunded automatically, or on its way) stays
    // owed back: the same payment seen again (the success page reloaded, a
    // redelivered or second event) once its units are free again must not
    // sell them to the customer who gets the money back (found in review).
    if let Some(intent) = intent {
        if crate::refunds::owed_back(tx, intent)? {
            return Ok(Applied::Unchanged { status: order.status });
        }
    }
    let exact = amount == order.total.amount_minor && currency.eq_ignore_ascii_case(order.total.currency.code());
    if matches!(order.status, Status::Cancelled | Status::Expired) {
        // An order cancelled after it was paid (and refunded) ended after
        // this payment, not before it: the same payment seen again (the
        // success page revisited, a late or repeated event) changes nothing.
        if let Some(p) = crate::summary::payment_for(tx, &order.id)? {
            if p.captured() && (intent.is_none() || intent == p.payment_intent.as_deref()) {
                return Ok(Applied::Unchanged { status: order.status });
            }
        }
        // The order ended unpaid and gave its stock back (or still owes the
        // release). An order that only expired is honoured if its units are
        // all still free: they are sold again, inside this transaction, and
        // the order is paid after all; the release it may still owe is
        // forgiven (one already on its way finds the units sold and leaves
        // them: the order is paid by then). Not for an account deleted
        // since (its address is erased: nothing could be shipped; found in
        // review): that money goes back. The erasure locked this order
        // before it committed, so it is seen here.
        if order.status == Status::Expired && honoured_late(tx, order, exact, late, inventory)? {
            orders_core::owed_stock::forgive(tx, &order.id)?;
            return pay(tx, order, intent, actor, &late_reason(reason));
        }
        // Otherwise the money goes back in full.
        return give_money_back(tx, order, intent, amount, currency, &format!("paid_after_{}", order.status));
    }
    // An unpaid order past its expiry that neither the sweep nor a read has
    // expired yet is paid late, as an expired one is (found in review: it
    // was paid, its sale owed against a hold that a stock write may have
    // given back and sold meanwhile, and then flagged `stock_unavailable`
    // with the money kept): honoured only if all its units are sold now,
    // in this transaction. Whichever came first, the sweep or the payment,
    // the outcome is the same.
    //
    // So is one of an account deleted since (its address is gone: nothing
    // could be shipped; found in review: it was paid and kept). An erasure
    // waits only for holds still running, so such an order had lapsed then;
    // its money always goes back.
    if order.status == Status::PendingPayment {
        let lapsed = order.expires_at <= clock::unix_now();
        let erased = orders_core::privacy::account_erased(tx, &order.user_id)?;
        if lapsed || erased {
            if !erased && honoured_late(tx, order, exact, late, inventory)? {
                // Sold in this transaction: a release an earlier attempt
                // left owed is forgiven, as for an expired order (found in
                // review: left on the paid order, a cancellation without
                // restock settled it later by putting every sold unit back).
                orders_core::owed_stock::forgive(tx, &order.id)?;
                return pay(tx, order, intent, actor, &late_reason(reason));
            }
            // Expired as the sweep would (its hold released after this
            // transaction). Only an order extended since its erasure (a
            // payment page asked for in time) stays pending until it lapses.
            give_back(tx, order, Status::Expired, actor, reason)?;
            let order = orders::load_locked(tx, &order.id)?.ok_or(PaymentError::UnknownOrder)?;
            return give_money_back(tx, &order, intent, amount, currency, "paid_after_expired");
        }
        // Its hold ends within [`SALE_GRACE_SECS`]: the sale is made now, in
        // this transaction, not owed (found in review: owed, the hold could
        // lapse before the sale after this transaction, another customer
        // take the units, and the order end paid, flagged
        // `stock_unavailable`, with the money kept). A live hold is sold as
        // is; one the catalog saw lapse and give away is a late payment.
        if exact && order.expires_at <= clock::unix_now() + sale_grace_secs(order) {
            if inventory.recommit(&order.id).map_err(PaymentError::InventoryUnavailable)? {
                orders_core::owed_stock::forgive(tx, &order.id)?;
                return pay(tx, order, intent, actor, reason);
            }
            // The catalog's hold has ended (its clock is ahead): so does the order.
            orders::end_now(tx, &order.id, clock::unix_now())?;
            let order = &orders::load_locked(tx, &order.id)?.ok_or(PaymentError::UnknownOrder)?;
            give_back(tx, order, Status::Expired, actor, reason)?;
            let order = orders::load_locked(tx, &order.id)?.ok_or(PaymentError::UnknownOrder)?;
            return give_money_back(tx, &order, intent, amount, currency, "paid_after_expired");
        }
    }
    if !exact {
        let problem = "amount_mismatch".to_string();
        orders::flag(tx, order, &problem)?;
        orders::record_event(tx, "order.flagged", &format!("{}:{problem}", order.id), &json!({
            "order_id": order.id, "problem": problem, "expected": order.total,
            "received": { "amount_minor": amount, "currency": currency.to_uppercase() },
        }))?;
        return Ok(Applied::Flagged { problem });
    }
    // The sale is owed in this transaction and made after it
    // ([`orders_core::owed_stock`]): the catalog's lock is never awaited
    // while this one holds the checkout database. A concurrent delivery of
    // the same payment waits for this transaction and then sees it paid.
    orders_core::owed_stock::owe_sale(tx, &order.id)?;
    pay(tx, order, intent, actor, reason)
}

/// How close to its order's expiry a payment has its sale made in the
/// paying transaction rather than after it: more than that transaction and
/// the sale after it take, and than the clocks of two instances differ.
pub const SALE_GRACE_SECS: i64 = 30;

/// [`SALE_GRACE_SECS`], or the last eighth of the order's life when that is
/// shorter (an order that lives seconds, as in the test suite, is paid
/// within its first seconds the usual way).
fn sale_grace_secs(order: &Order) -> i64 {
    let life = clock::parse_rfc3339(&order.created_at).map_or(i64::MAX, |created| order.expires_at - created);
    SALE_GRACE_SECS.min(life / 8).max(1)
}

/// A payment arriving after its order's hold ended is honoured when the
/// policy says so, the amount is exact, the account still exists, and all
/// of its units can be sold now (inside this transaction, all or none).
fn honoured_late(tx: &dyn Db, order: &Order, exact: bool, late: LatePayments, inventory: &dyn Inventory) -> Result<bool, PaymentError> {
    Ok(late == LatePayments::Honour
        && exact
        && !orders_core::privacy::account_erased(tx, &order.user_id)?
        && inventory.recommit(&order.id).map_err(PaymentError::InventoryUnavailable)?)
}

/// The history's reason for a late payment honoured.
fn late_reason(reason: &str) -> String {
    format!("{reason} (late payment honoured: its hold had lapsed, its units were still free)")
}

/// Money the order cannot keep goes back in full (through its intent, or,
/// with none known, flagged for an admin) under `problem`.
fn give_money_back(tx: &dyn Db, order: &Order, intent: Option<&str>, amount: i64, currency: &str, problem: &str) -> Result<Applied, PaymentError> {
    match intent {
        Some(new) => owe_back(tx, order, new, amount, currency, problem)?,
        None => orders::flag(tx, order, problem)?,
    }
    Ok(Applied::Flagged { problem: problem.to_string() })
}

/// Mark the order paid by `intent`: refunds go to the intent that captured
/// the money, not to an earlier attempt recorded when payment started.
fn pay(tx: &dyn Db, order: &Order, intent: Option<&str>, actor: &str, reason: &str) -> Result<Applied, PaymentError> {
    // An order paid through an intent the shop never saw before (a late
    // payment) gets its summary here.
    crate::summary::record_payment(tx, order, None, intent)?;
    set_payment_status(tx, &order.id, "paid")?;
    // The invoice is issued with the payment, in this transaction.
    orders_core::invoices::issue_invoice(tx, order, &InvoiceSettings::from_variables())?;
    if let Some(pi) = intent {
        tx.execute("UPDATE payments SET payment_intent = ? WHERE order_id = ?", &[pi.into(), order.id.as_str().into()])?;
    }
    let updated = orders::transition(tx, order, Status::Paid, actor, reason)?;
    // Money of this payment refunded before its payment was seen (Stripe's
    // `charge.refunded` came first, while the order was unpaid, and was set
    // aside: the ledger has it; found in review: the order was then paid
    // with nothing refunded, and shipped) counts now, as if it came after.
    if let Some(pi) = intent {
        let back = ledger::find(tx, pi)?.map_or(0, |o| o.amount_refunded);
        if back > 0 {
            return refunded(tx, &updated, back, actor, &format!("{reason} (refunded before its payment was seen)"));
        }
    }
    Ok(Applied::Changed { status: updated.status })
}

/// Record money the order cannot keep (`reason`: `paid_after_expired`,
/// `paid_after_cancelled`, `paid_twice`) for an automatic refund, once per
/// PaymentIntent, and flag the order for an admin. The refund itself is
/// sent after this transaction ([`crate::refunds::refund_owed`]).
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


fn give_back(tx: &dyn Db, order: &Order, to: Status, actor: &str, reason: &str) -> Result<Applied, PaymentError> {
    if order.status != Status::PendingPayment {
        // Already paid (a late failure/expiry) or already closed: monotonic.
        return Ok(Applied::Unchanged { status: order.status });
    }
    // An expiry decided on an earlier read (the sweep's list, a read of the
    // order) is checked again under the order's lock: a payment page asked
    // for in time has extended the order meanwhile (found in review: the
    // sweep expired it anyway and put its stock back on sale).
    if to == Status::Expired && order.expires_at > clock::unix_now() {
        return Ok(Applied::Unchanged { status: order.status });
    }
    // The hold is released after this transaction ([`orders_core::owed_stock`]).
    orders_core::owed_stock::owe_release(tx, &order.id)?;
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


/// A dispute opened, changed or closed: recorded (a late event never
/// reopens a closed one), noted in the order's history, and the order's
/// flags follow: `disputed` while one of its disputes is open (fulfilment
/// is refused meanwhile), `dispute_lost` once one is lost (and fulfilment
/// stays refused: the money went back to the cardholder).
fn disputed(tx: &dyn Db, order: &Order, told: &orders_core::disputes::Told, actor: &str) -> Result<Applied, PaymentError> {
    use orders_core::disputes;
    let Some(before) = disputes::record(tx, &order.id, told, &clock::now_rfc3339())? else {
        return Ok(Applied::Unchanged { status: order.status });
    };
    let what = match before {
        None => format!("card dispute {} opened ({}, {} {} minor units): {}", told.id, told.reason, told.amount_minor, told.currency, told.status),
        Some(was) => format!("card dispute {}: {was} -> {}", told.id, told.status),
    };
    orders::note(tx, order, actor, &what)?;
    // A dispute of a payment the shop gives back (a second payment, one
    // after the order ended): the admin answers it at Stripe with that refund
    // (the flag stays if it is lost: the money may have gone back twice);
    // the order's own payment is untouched, so its fulfilment goes on.
    if !disputes::concerns_kept_payment(tx, &order.id, told)? {
        // An order flagged `disputed` for this dispute before such disputes
        // were told apart loses the flag once none of its own payment is open.
        if !disputes::any_open(tx, &order.id)? {
            orders::unflag(tx, &order.id, "disputed")?;
        }
        if disputes::any_unsettled_of_returned(tx, &order.id)? {
            orders::flag(tx, order, "dispute_of_returned_payment")?;
            return Ok(Applied::Flagged { problem: "dispute_of_returned_payment".into() });
        }
        orders::unflag(tx, &order.id, "dispute_of_returned_payment")?;
        return Ok(Applied::Unchanged { status: order.status });
    }
    if told.status == "lost" {
        orders::flag(tx, order, "dispute_lost")?;
    }
    if disputes::any_open(tx, &order.id)? {
        orders::flag(tx, order, "disputed")?;
        return Ok(Applied::Flagged { problem: "disputed".into() });
    }
    orders::unflag(tx, &order.id, "disputed")?;
    Ok(if told.status == "lost" { Applied::Flagged { problem: "dispute_lost".into() } } else { Applied::Unchanged { status: order.status } })
}

fn refunded(tx: &dyn Db, order: &Order, total_refunded: i64, actor: &str, reason: &str) -> Result<Applied, PaymentError> {
    if total_refunded <= order.refunded.amount_minor {
        return Ok(Applied::Unchanged { status: order.status });
    }
    orders::set_refunded(tx, &order.id, total_refunded)?;
    // A credit note for what this refund returned, against the invoice.
    let returned = total_refunded - order.refunded.amount_minor;
    orders_core::invoices::issue_credit_note(tx, order, returned, &format!("refunded:{total_refunded}"), &InvoiceSettings::from_variables())?;
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


#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{order_of, record_created};
    use orders_core::orders::{insert, NewOrder, OrderLine};
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
        fn release(&self, order_id: &str) -> Result<bool, String> {
            self.calls.borrow_mut().push(format!("release {order_id}"));
            Ok(true)
        }
        fn return_sold(&self, order_id: &str) -> Result<(), String> {
            self.calls.borrow_mut().push(format!("return_sold {order_id}"));
            Ok(())
        }
        fn recommit(&self, order_id: &str) -> Result<bool, String> {
            self.calls.borrow_mut().push(format!("recommit {order_id}"));
            Ok(!self.stock_gone)
        }
        fn restock(&self, order_id: &str, operation: &str, _: &[(String, u32)]) -> Result<Vec<(String, u32)>, orders_core::inventory_client::HoldError> {
            self.calls.borrow_mut().push(format!("restock {order_id} {operation}"));
            Ok(Vec::new())
        }
    }

    fn setup() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, orders_core::schema::MIGRATIONS).unwrap();
        let usd = Currency::parse("USD").unwrap();
        let line = OrderLine { product_id: "p".into(), sku: "S".into(), name: "N".into(), unit_price: Money::new(500, usd), quantity: 2, line_total: Money::new(1000, usd) };
        let order = insert(&db, &NewOrder { id: "o1".into(), user_id: "u".into(), currency: usd, lines: vec![line], shipping_address: None, expires_at: clock::unix_now() + 3600, cart_version: None }, "u").unwrap();
        record_created(&db, &order, ledger::Kind::CheckoutSession, "cs_1", None).unwrap();
        db
    }

    /// The order's hold has lapsed (its expiry passed).
    fn lapse(db: &MemDb) {
        db.execute("UPDATE orders SET expires_at = 10 WHERE id = 'o1'", &[]).unwrap();
    }

    /// The policy is explicit in tests (the Spin variable is not there).
    fn apply(db: &MemDb, id: &str, outcome: &Outcome, source: Source, actor: &str, inv: &FakeInventory) -> Result<Applied, PaymentError> {
        apply_with(db, id, outcome, source, actor, inv, LatePayments::Refund)
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
        assert_eq!(apply(&db, "o1", &paid(), Source::Event { id: "evt_1", kind: "checkout.session.completed", object: &Json::Null }, "stripe", &inv).unwrap(), Applied::Changed { status: Status::Paid });
        assert_eq!(apply(&db, "o1", &paid(), Source::Event { id: "evt_1", kind: "checkout.session.completed", object: &Json::Null }, "stripe", &inv).unwrap(), Applied::Duplicate);
        assert_eq!(apply(&db, "o1", &paid(), Source::Shop, "return", &inv).unwrap(), Applied::Unchanged { status: Status::Paid });
        assert_eq!(inv.calls.borrow().as_slice(), ["commit o1"]);
        assert_eq!(outbox(&db, "order.paid"), 1);
        assert_eq!(order_of(&db, None, Some("pi_1")).unwrap().as_deref(), Some("o1"));
    }

    #[test]
    fn late_failures_never_move_a_paid_order_back() {
        let db = setup();
        let inv = FakeInventory::default();
        apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap();
        assert_eq!(apply(&db, "o1", &Outcome::Expired, Source::Event { id: "evt_2", kind: "checkout.session.expired", object: &Json::Null }, "stripe", &inv).unwrap(), Applied::Unchanged { status: Status::Paid });
        assert_eq!(status(&db), Status::Paid);
        assert!(!inv.calls.borrow().iter().any(|c| c.starts_with("release")));
    }

    #[test]
    fn expiry_releases_stock_and_a_late_payment_is_flagged() {
        let db = setup();
        lapse(&db);
        let inv = FakeInventory::default();
        assert_eq!(apply(&db, "o1", &Outcome::Expired, Source::Shop, "sweep", &inv).unwrap(), Applied::Changed { status: Status::Expired });
        assert_eq!(apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap(), Applied::Flagged { problem: "paid_after_expired".into() });
        assert_eq!(status(&db), Status::Expired);
        assert_eq!(orders::load(&db, "o1").unwrap().unwrap().flags, vec!["paid_after_expired".to_string()]);
    }

    /// Found in review: a release an earlier, failed attempt left owed
    /// stayed on the order that a redelivered payment then paid (selling
    /// its units in that transaction), and a cancellation without restock
    /// later settled it by putting every sold unit back on hand. Both ways
    /// a pending order's payment sells in its own transaction forgive it:
    /// a late payment honoured, and one in the hold's last seconds.
    #[test]
    fn a_payment_that_sells_in_its_transaction_forgives_an_owed_release() {
        for lapsed in [true, false] {
            let db = setup();
            let inv = FakeInventory::default();
            let expires = if lapsed { 10 } else { clock::unix_now() + 5 };
            db.execute("UPDATE orders SET expires_at = ? WHERE id = 'o1'", &[expires.into()]).unwrap();
            storage::transaction(&db, |tx| orders_core::owed_stock::owe_release(tx, "o1")).unwrap();
            let applied = apply_with(&db, "o1", &paid(), Source::Shop, "stripe", &inv, LatePayments::Honour).unwrap();
            assert_eq!(applied, Applied::Changed { status: Status::Paid }, "lapsed {lapsed}");
            assert_eq!(orders_core::owed_stock::owed(&db, "o1").unwrap(), None, "lapsed {lapsed}: nothing owed once paid");
            assert!(!inv.calls.borrow().iter().any(|c| c.starts_with("release") || c.starts_with("return_sold")), "lapsed {lapsed}: {:?}", inv.calls.borrow());
        }
    }

    /// Found in review: the sweep read an order as overdue, a payment page
    /// asked for in time then extended it, and the sweep's expiry, applied
    /// after, ended it anyway and gave its stock back.
    #[test]
    fn an_order_extended_since_the_expiry_was_decided_is_not_expired() {
        let db = setup();
        let inv = FakeInventory::default();
        db.execute("UPDATE orders SET expires_at = ? WHERE id = 'o1'", &[(clock::unix_now() + 600).into()]).unwrap();
        assert_eq!(apply(&db, "o1", &Outcome::Expired, Source::Shop, "sweep", &inv).unwrap(), Applied::Unchanged { status: Status::PendingPayment });
        assert_eq!(status(&db), Status::PendingPayment);
        assert!(inv.calls.borrow().is_empty(), "no stock moved: {:?}", inv.calls.borrow());
    }

    /// Found in review: a late payment for an expired order of an account
    /// deleted since was honoured, a paid order with no address to ship to.
    #[test]
    fn a_late_payment_for_a_deleted_account_s_order_goes_back() {
        let db = setup();
        lapse(&db);
        let inv = FakeInventory::default();
        apply(&db, "o1", &Outcome::Expired, Source::Shop, "sweep", &inv).unwrap();
        assert_eq!(orders_core::privacy::erase_user(&db, "u", clock::unix_now()).unwrap(), Ok(0));
        let late = apply_with(&db, "o1", &paid(), Source::Shop, "stripe", &inv, LatePayments::Honour).unwrap();
        assert_eq!(late, Applied::Flagged { problem: "paid_after_expired".into() });
        assert_eq!(status(&db), Status::Expired);
        assert!(!inv.calls.borrow().iter().any(|c| c.starts_with("recommit")), "{:?}", inv.calls.borrow());
    }

    /// Found in review: a payment seconds before its order's expiry owed
    /// the sale, and the hold could lapse and its units go to another
    /// customer before the sale was made. Near the end the sale is made in
    /// the paying transaction; if the catalog already gave the units away,
    /// the money goes back.
    #[test]
    fn a_payment_just_before_the_expiry_sells_in_the_paying_transaction() {
        let db = setup();
        let soon = clock::unix_now() + SALE_GRACE_SECS / 2;
        // Placed an hour ago, with a few seconds left.
        let placed = clock::format_rfc3339(clock::unix_now() - 3600);
        let near_the_end = |db: &MemDb| db.execute("UPDATE orders SET expires_at = ?, created_at = ? WHERE id = 'o1'", &[soon.into(), placed.as_str().into()]).unwrap();
        near_the_end(&db);
        let inv = FakeInventory::default();
        assert_eq!(apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap(), Applied::Changed { status: Status::Paid });
        assert_eq!(*inv.calls.borrow(), vec!["recommit o1".to_string()], "sold, nothing owed");
        assert!(db.query("SELECT 1 AS x FROM owed_stock", &[]).unwrap().is_empty());

        let db = setup();
        near_the_end(&db);
        let inv = FakeInventory { stock_gone: true, ..FakeInventory::default() };
        let r = apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap();
        assert_eq!(r, Applied::Flagged { problem: "paid_after_expired".into() });
        assert_eq!(status(&db), Status::Expired);

        // Well before the end, or an order that lives seconds paid in its
        // first ones: owed, as before.
        let db = setup();
        db.execute("UPDATE orders SET expires_at = ? WHERE id = 'o1'", &[(clock::unix_now() + 8).into()]).unwrap();
        let inv = FakeInventory::default();
        assert_eq!(apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap(), Applied::Changed { status: Status::Paid });
        assert!(inv.calls.borrow().iter().all(|c| !c.starts_with("recommit")), "{:?}", inv.calls.borrow());
    }

    /// The catalog sells, then the paying transaction fails after it.
    struct SellsThenBreaks<'a> {
        db: &'a MemDb,
    }

    impl Inventory for SellsThenBreaks<'_> {
        fn commit(&self, _: &str) -> Result<bool, String> {
            Ok(true)
        }
        fn release(&self, _: &str) -> Result<bool, String> {
            Ok(false)
        }
        fn return_sold(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn recommit(&self, _: &str) -> Result<bool, String> {
            // The invoice the payment writes next can no longer be written.
            self.db.execute("DROP TABLE invoices", &[]).unwrap();
            Ok(true)
        }
        fn restock(&self, _: &str, _: &str, _: &[(String, u32)]) -> Result<Vec<(String, u32)>, orders_core::inventory_client::HoldError> {
            Ok(Vec::new())
        }
    }

    /// Found in review: a late payment honoured sold the units in the
    /// catalog, its transaction then failed, and nothing owed them back.
    #[test]
    fn units_sold_by_a_paying_transaction_that_failed_are_owed_back() {
        let db = setup();
        lapse(&db);
        let r = apply_with(&db, "o1", &paid(), Source::Shop, "stripe", &SellsThenBreaks { db: &db }, LatePayments::Honour);
        assert!(r.is_err(), "{r:?}");
        assert_eq!(status(&db), Status::PendingPayment, "nothing paid");
        assert_eq!(orders_core::owed_stock::owed(&db, "o1").unwrap().as_deref(), Some("release"));
    }

    /// Found in review: an unpaid order whose hold had lapsed but which the
    /// sweep had not yet expired let its account be deleted, and a payment
    /// then made it a paid order with no address. It ends expired, its
    /// money goes back, and its hold is released.
    #[test]
    fn a_payment_for_an_unswept_lapsed_order_of_a_deleted_account_goes_back() {
        let db = setup();
        lapse(&db);
        let inv = FakeInventory::default();
        assert_eq!(orders_core::privacy::erase_user(&db, "u", clock::unix_now()).unwrap(), Ok(0));
        assert_eq!(status(&db), Status::PendingPayment, "lapsed, not swept");
        let late = apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap();
        assert_eq!(late, Applied::Flagged { problem: "paid_after_expired".into() });
        assert_eq!(status(&db), Status::Expired);
        let owed = db.query("SELECT amount_minor, status FROM automatic_refunds WHERE payment_intent = 'pi_1'", &[]).unwrap();
        let owed = owed.first().expect("an automatic refund owed");
        assert_eq!((owed.int("amount_minor").unwrap(), owed.text("status").unwrap()), (1000, "pending".to_string()));
        assert_eq!(*inv.calls.borrow(), vec!["release o1".to_string()], "the hold is given back, nothing sold");
    }

    /// Found in review: an order past its expiry that nothing had expired
    /// yet was paid with its sale owed, though its hold may have been given
    /// back and its units sold; then only flagged, the money kept. It is a
    /// late payment like any other: honoured if all its units are sold now,
    /// refunded (the order expired, its hold released) if not.
    #[test]
    fn a_payment_for_a_lapsed_order_not_yet_expired_is_a_late_payment() {
        let db = setup();
        lapse(&db);
        let inv = FakeInventory::default();
        let honoured = apply_with(&db, "o1", &paid(), Source::Shop, "stripe", &inv, LatePayments::Honour).unwrap();
        assert_eq!(honoured, Applied::Changed { status: Status::Paid });
        assert_eq!(*inv.calls.borrow(), vec!["recommit o1".to_string()], "sold in the paying transaction, nothing owed");

        let db = setup();
        lapse(&db);
        let gone = FakeInventory { stock_gone: true, ..Default::default() };
        let refunded = apply_with(&db, "o1", &paid(), Source::Shop, "stripe", &gone, LatePayments::Honour).unwrap();
        assert_eq!(refunded, Applied::Flagged { problem: "paid_after_expired".into() });
        assert_eq!(status(&db), Status::Expired);
        assert_eq!(crate::refunds::automatic_refunds(&db, "o1").unwrap().len(), 1, "the money goes back");
        assert_eq!(*gone.calls.borrow(), vec!["recommit o1".to_string(), "release o1".to_string()]);
    }

    #[test]
    fn a_late_payment_is_honoured_when_its_units_are_still_free() {
        let db = setup();
        lapse(&db);
        let inv = FakeInventory::default();
        apply(&db, "o1", &Outcome::Expired, Source::Shop, "sweep", &inv).unwrap();
        let honoured = apply_with(&db, "o1", &paid(), Source::Shop, "stripe", &inv, LatePayments::Honour).unwrap();
        assert_eq!(honoured, Applied::Changed { status: Status::Paid });
        assert_eq!(inv.calls.borrow().as_slice(), ["release o1", "recommit o1"]);
        assert_eq!(outbox(&db, "order.paid"), 1);
        let history = orders::history(&db, "o1").unwrap();
        assert!(history.last().unwrap().reason.contains("late payment honoured"), "{history:?}");

        let db = setup();
        lapse(&db);
        let gone = FakeInventory { stock_gone: true, ..Default::default() };
        apply(&db, "o1", &Outcome::Expired, Source::Shop, "sweep", &gone).unwrap();
        let refunded = apply_with(&db, "o1", &paid(), Source::Shop, "stripe", &gone, LatePayments::Honour).unwrap();
        assert_eq!(refunded, Applied::Flagged { problem: "paid_after_expired".into() }, "units gone: the money goes back");
        assert_eq!(crate::refunds::automatic_refunds(&db, "o1").unwrap().len(), 1);
    }

    /// Found in review: a late payment refunded because its units were
    /// gone was honoured when seen again once they were free.
    #[test]
    fn money_owed_back_is_never_honoured_later() {
        let db = setup();
        lapse(&db);
        let gone = FakeInventory { stock_gone: true, ..Default::default() };
        apply(&db, "o1", &Outcome::Expired, Source::Shop, "sweep", &gone).unwrap();
        let refused = apply_with(&db, "o1", &paid(), Source::Shop, "stripe", &gone, LatePayments::Honour).unwrap();
        assert_eq!(refused, Applied::Flagged { problem: "paid_after_expired".into() });
        let free = FakeInventory::default();
        let again = apply_with(&db, "o1", &paid(), Source::Shop, "stripe", &free, LatePayments::Honour).unwrap();
        assert_eq!(again, Applied::Unchanged { status: Status::Expired });
        assert_eq!(status(&db), Status::Expired);
        assert!(free.calls.borrow().is_empty(), "nothing sold: {:?}", free.calls.borrow());
    }

    #[test]
    fn a_cancelled_order_is_never_honoured() {
        let db = setup();
        let inv = FakeInventory::default();
        apply(&db, "o1", &Outcome::Failed, Source::Shop, "customer", &inv).unwrap();
        let late = apply_with(&db, "o1", &paid(), Source::Shop, "stripe", &inv, LatePayments::Honour).unwrap();
        assert_eq!(late, Applied::Flagged { problem: "paid_after_cancelled".into() });
        assert!(!inv.calls.borrow().iter().any(|c| c.starts_with("recommit")));
    }

    /// Found in review: Stripe's `charge.refunded` delivered before the
    /// payment's own event (which failed and was redelivered later) was set
    /// aside, and the order then paid with nothing refunded.
    #[test]
    fn a_refund_seen_before_its_payment_counts_once_the_payment_is_seen() {
        let db = setup();
        let inv = FakeInventory::default();
        let order = orders::load(&db, "o1").unwrap().unwrap();
        record_created(&db, &order, ledger::Kind::PaymentIntent, "pi_1", None).unwrap();
        let charge = json!({ "id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount": 1000, "amount_captured": 1000, "amount_refunded": 1000, "currency": "usd" });
        let back = Outcome::Refunded { total_refunded: 1000, payment_intent: Some("pi_1".into()) };
        let early = apply(&db, "o1", &back, Source::Event { id: "e_refund", kind: "charge.refunded", object: &charge }, "stripe", &inv).unwrap();
        assert_eq!(early, Applied::Unchanged { status: Status::PendingPayment });
        let late = apply(&db, "o1", &paid(), Source::Event { id: "e_paid", kind: "payment_intent.succeeded", object: &Json::Null }, "stripe", &inv).unwrap();
        assert_eq!(late, Applied::Changed { status: Status::Refunded });
        let after = orders::load(&db, "o1").unwrap().unwrap();
        assert_eq!(after.refunded.amount_minor, 1000);
    }

    /// The refund of a payment made through the order's own intent after
    /// the order was cancelled (returned automatically) is not the order's:
    /// it never kept that money.
    #[test]
    fn the_automatic_refund_of_a_payment_after_cancellation_is_not_the_order_s_refund() {
        let db = setup();
        let inv = FakeInventory::default();
        let order = orders::load(&db, "o1").unwrap().unwrap();
        record_created(&db, &order, ledger::Kind::PaymentIntent, "pi_1", None).unwrap();
        apply(&db, "o1", &Outcome::Failed, Source::Shop, "customer", &inv).unwrap();
        assert_eq!(apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap(), Applied::Flagged { problem: "paid_after_cancelled".into() });
        let back = Outcome::Refunded { total_refunded: 1000, payment_intent: Some("pi_1".into()) };
        let event = Source::Event { id: "e_refund", kind: "charge.refunded", object: &Json::Null };
        assert_eq!(apply(&db, "o1", &back, event, "stripe", &inv).unwrap(), Applied::Unchanged { status: Status::Cancelled });
        let after = orders::load(&db, "o1").unwrap().unwrap();
        assert_eq!(after.refunded.amount_minor, 0);
        assert_ne!(crate::summary::payment_for(&db, "o1").unwrap().unwrap().status, "refunded");
        assert!(orders_core::invoices::credit_notes_of(&db, "o1").unwrap().is_empty());
    }

    #[test]
    fn events_record_their_objects_and_old_attempts_touch_only_theirs() {
        let db = setup();
        let inv = FakeInventory::default();
        let old = serde_json::json!({ "id": "cs_0" });
        // An older session of the order, expiring late: its own row only.
        ledger::record(&db, "o1", ledger::Kind::CheckoutSession, "cs_0", "open", "shop", &Default::default()).unwrap();
        let ended = Outcome::AttemptEnded { payment_status: "session_expired", object: Some("cs_0".into()) };
        apply(&db, "o1", &ended, Source::Event { id: "e1", kind: "checkout.session.expired", object: &old }, "stripe", &inv).unwrap();
        assert_eq!(ledger::find(&db, "cs_0").unwrap().unwrap().status, "expired");
        assert_eq!(crate::summary::payment_for(&db, "o1").unwrap().unwrap().status, "awaiting_payment", "cs_1 is still payable");
        assert_eq!(status(&db), Status::PendingPayment);
        let session = serde_json::json!({ "id": "cs_1", "payment_intent": "pi_1", "payment_status": "paid", "amount_total": 1000, "currency": "usd" });
        apply(&db, "o1", &paid(), Source::Event { id: "e2", kind: "checkout.session.completed", object: &session }, "stripe", &inv).unwrap();
        let objects = ledger::objects_of(&db, "o1").unwrap();
        let brief: Vec<_> = objects.iter().map(|o| (o.id.as_str(), o.status.as_str())).collect();
        assert!(brief.contains(&("cs_1", "complete")) && brief.contains(&("pi_1", "succeeded")), "{brief:?}");
        // A late "expired" for the completed session changes nothing.
        let expired = serde_json::json!({ "id": "cs_1" });
        apply(&db, "o1", &ended, Source::Event { id: "e3", kind: "checkout.session.expired", object: &expired }, "stripe", &inv).unwrap();
        assert_eq!(ledger::find(&db, "cs_1").unwrap().unwrap().status, "complete");
    }

    #[test]
    fn a_refund_of_another_intent_leaves_the_orders_payment_alone() {
        let db = setup();
        let inv = FakeInventory::default();
        apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap();
        let other = Outcome::Refunded { total_refunded: 1000, payment_intent: Some("pi_2".into()) };
        assert_eq!(apply(&db, "o1", &other, Source::Shop, "stripe", &inv).unwrap(), Applied::Unchanged { status: Status::Paid });
        let own = Outcome::Refunded { total_refunded: 1000, payment_intent: Some("pi_1".into()) };
        assert_eq!(apply(&db, "o1", &own, Source::Shop, "stripe", &inv).unwrap(), Applied::Changed { status: Status::Refunded });
    }

    #[test]
    fn amount_mismatch_is_flagged_not_paid() {
        let db = setup();
        let inv = FakeInventory::default();
        let short = Outcome::Paid { amount_minor: 999, currency: "usd".into(), payment_intent: None };
        assert_eq!(apply(&db, "o1", &short, Source::Shop, "stripe", &inv).unwrap(), Applied::Flagged { problem: "amount_mismatch".into() });
        let wrong_currency = Outcome::Paid { amount_minor: 1000, currency: "eur".into(), payment_intent: None };
        assert!(matches!(apply(&db, "o1", &wrong_currency, Source::Shop, "stripe", &inv).unwrap(), Applied::Flagged { .. }));
        assert_eq!(status(&db), Status::PendingPayment);
        assert!(inv.calls.borrow().is_empty());
    }

    #[test]
    fn refunds_are_partial_then_full_and_monotonic() {
        let db = setup();
        let inv = FakeInventory::default();
        apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap();
        assert_eq!(apply(&db, "o1", &Outcome::Refunded { total_refunded: 400, payment_intent: None }, Source::Event { id: "e1", kind: "charge.refunded", object: &Json::Null }, "stripe", &inv).unwrap(), Applied::Changed { status: Status::Paid }, "a partial refund leaves fulfilment alone");
        assert_eq!(apply(&db, "o1", &Outcome::Refunded { total_refunded: 300, payment_intent: None }, Source::Event { id: "e0", kind: "charge.refunded", object: &Json::Null }, "stripe", &inv).unwrap(), Applied::Unchanged { status: Status::Paid }, "an older event");
        assert_eq!(orders::load(&db, "o1").unwrap().unwrap().refunded.amount_minor, 400);
        assert_eq!(apply(&db, "o1", &Outcome::Refunded { total_refunded: 1000, payment_intent: None }, Source::Event { id: "e2", kind: "charge.refunded", object: &Json::Null }, "stripe", &inv).unwrap(), Applied::Changed { status: Status::Refunded });
        assert_eq!(outbox(&db, "order.refunded"), 2);
    }

    /// A second payment of o1 (intent `pi_2`), owed back automatically.
    fn paid_twice(db: &MemDb) {
        let order = orders::load(db, "o1").unwrap().unwrap();
        owe_back(db, &order, "pi_2", 1000, "usd", "paid_twice").unwrap();
    }

    /// A refund Stripe could not pay out after all (`refund.failed`, or the
    /// older `charge.refund.updated`): the ledger row becomes `failed`, the
    /// order is flagged once whichever of Stripe's two events comes, and
    /// what can be refunded again counts the money that did not go back.
    #[test]
    fn a_refund_that_fails_later_is_flagged_and_can_be_sent_again() {
        let db = setup();
        let inv = FakeInventory::default();
        apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap();
        let seen = ledger::Sighting { parent_id: Some("pi_1"), amount_minor: Some(1000), currency: Some("usd"), ..Default::default() };
        ledger::record(&db, "o1", ledger::Kind::Refund, "re_1", "succeeded", "shop", &seen).unwrap();
        apply(&db, "o1", &Outcome::Refunded { total_refunded: 1000, payment_intent: Some("pi_1".into()) }, Source::Shop, "admin", &inv).unwrap();
        let order = orders::load(&db, "o1").unwrap().unwrap();
        assert_eq!((order.status, crate::refunds::refundable(&db, &order, None).unwrap().unwrap().left), (Status::Refunded, 0));

        let refund = json!({ "id": "re_1", "object": "refund", "status": "succeeded", "amount": 1000, "currency": "usd", "payment_intent": "pi_1" });
        let changed = |id: &str, kind: &str, object: &Json| apply(&db, "o1", &Outcome::RefundChanged { refund: "re_1".into() }, Source::Event { id, kind, object }, "stripe", &inv).unwrap();
        assert_eq!(changed("e_ok", "refund.updated", &refund), Applied::Unchanged { status: Status::Refunded }, "still succeeded");
        let mut failed = refund.clone();
        failed["status"] = json!("failed");
        failed["failure_reason"] = json!("expired_or_canceled_card");
        assert_eq!(changed("e_failed", "refund.failed", &failed), Applied::Flagged { problem: "refund_failed_later".into() });
        assert_eq!(changed("e_updated", "charge.refund.updated", &failed), Applied::Unchanged { status: Status::Refunded }, "the same failure told twice");
        assert_eq!(changed("e_late", "refund.updated", &refund), Applied::Unchanged { status: Status::Refunded }, "a late event never makes it succeed again");
        assert_eq!(ledger::find(&db, "re_1").unwrap().unwrap().status, "failed");
        let order = orders::load(&db, "o1").unwrap().unwrap();
        assert_eq!(order.flags, vec!["refund_failed_later".to_string()]);
        assert_eq!(order.refunded.amount_minor, 1000, "the credit note stands: the shop still owes it");
        assert_eq!(crate::refunds::refundable(&db, &order, None).unwrap().unwrap().left, 1000, "sent again");

        // Sent again and counted: nothing more to send, and no second credit note.
        ledger::record(&db, "o1", ledger::Kind::Refund, "re_2", "succeeded", "shop", &seen).unwrap();
        apply(&db, "o1", &Outcome::Refunded { total_refunded: 1000, payment_intent: Some("pi_1".into()) }, Source::Shop, "admin", &inv).unwrap();
        let order = orders::load(&db, "o1").unwrap().unwrap();
        assert_eq!(crate::refunds::refundable(&db, &order, None).unwrap().unwrap().left, 0);
        assert_eq!(orders_core::invoices::credit_notes_of(&db, "o1").unwrap().len(), 1);
    }

    /// An automatic refund (money the order could not take) that fails later
    /// is `failed` again, for an admin, as when Stripe refuses it.
    #[test]
    fn an_automatic_refund_that_fails_later_is_failed_again() {
        let db = setup();
        let inv = FakeInventory::default();
        apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap();
        paid_twice(&db);
        db.execute("UPDATE automatic_refunds SET status = 'refunded', attempts = 1, stripe_refund = 're_auto'", &[]).unwrap();
        let failed = json!({ "id": "re_auto", "object": "refund", "status": "failed", "amount": 1000, "currency": "usd", "payment_intent": "pi_2", "failure_reason": "lost_or_stolen_card" });
        let r = apply(&db, "o1", &Outcome::RefundChanged { refund: "re_auto".into() }, Source::Event { id: "e_auto", kind: "refund.failed", object: &failed }, "stripe", &inv).unwrap();
        assert_eq!(r, Applied::Flagged { problem: "automatic_refund_failed".into() });
        let auto = crate::refunds::automatic_refunds(&db, "o1").unwrap();
        assert_eq!(auto[0].status, "failed");
        assert!(auto[0].last_error.as_deref().unwrap().contains("lost_or_stolen_card"), "{:?}", auto[0].last_error);
        let order = orders::load(&db, "o1").unwrap().unwrap();
        assert_eq!((order.status, order.refunded.amount_minor), (Status::Paid, 0), "the order's own payment is untouched");
    }

    /// Found in review: `refund.failed` handled before the shop recorded
    /// Stripe's answer to an automatic refund found its entry still
    /// pending, and the order was flagged as for an admin's refund.
    #[test]
    fn an_automatic_refund_whose_failure_came_first_is_failed() {
        let db = setup();
        let inv = FakeInventory::default();
        apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap();
        paid_twice(&db);
        let failed = json!({ "id": "re_early", "object": "refund", "status": "failed", "amount": 1000, "currency": "usd", "payment_intent": "pi_2" });
        let r = apply(&db, "o1", &Outcome::RefundChanged { refund: "re_early".into() }, Source::Event { id: "e_early", kind: "refund.failed", object: &failed }, "stripe", &inv).unwrap();
        assert_eq!(r, Applied::Flagged { problem: "automatic_refund_failed".into() });
        assert_eq!(crate::refunds::automatic_refunds(&db, "o1").unwrap()[0].status, "failed");
    }

    #[test]
    fn paying_issues_the_invoice_and_refunds_issue_credit_notes() {
        let db = setup();
        let inv = FakeInventory::default();
        apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap();
        let invoice = orders_core::invoices::invoice_of(&db, "o1").unwrap().expect("issued with the payment");
        assert_eq!(invoice.total.amount_minor, 1000);
        let paid_event = db.query("SELECT payload FROM outbox WHERE event_type = 'order.paid'", &[]).unwrap();
        assert!(paid_event.first().unwrap().text("payload").unwrap().contains(&invoice.number), "the paid email names it");
        apply(&db, "o1", &Outcome::Refunded { total_refunded: 300, payment_intent: None }, Source::Shop, "stripe", &inv).unwrap();
        apply(&db, "o1", &Outcome::Refunded { total_refunded: 300, payment_intent: None }, Source::Shop, "stripe", &inv).unwrap();
        apply(&db, "o1", &Outcome::Refunded { total_refunded: 1000, payment_intent: None }, Source::Shop, "stripe", &inv).unwrap();
        let notes = orders_core::invoices::credit_notes_of(&db, "o1").unwrap();
        assert_eq!(notes.iter().map(|n| n.total.amount_minor).collect::<Vec<_>>(), vec![300, 700], "one per refund, for what it returned");
        assert!(notes.iter().all(|n| n.invoice_number.as_deref() == Some(invoice.number.as_str())));
    }

    #[test]
    fn lost_stock_is_flagged_but_the_payment_counts() {
        let db = setup();
        let inv = FakeInventory { stock_gone: true, ..Default::default() };
        apply(&db, "o1", &paid(), Source::Shop, "stripe", &inv).unwrap();
        let o = orders::load(&db, "o1").unwrap().unwrap();
        assert_eq!((o.status, o.flags), (Status::Paid, vec!["stock_unavailable".to_string()]));
    }
}

