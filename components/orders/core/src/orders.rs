//! Orders: the SQL and the use cases that change them. Every status change
//! goes through [`transition`], which checks the state machine and writes
//! the history row and the outbox event in the caller's transaction.

use crate::domain::{Address, Status};
use money::{Currency, Money};
use serde::Serialize;
use serde_json::{json, Value as Json};
use storage::{Db, DbError, Row};

/// A snapshot of one order line, as it was when the order was placed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderLine {
    pub product_id: String,
    pub sku: String,
    pub name: String,
    pub unit_price: Money,
    pub quantity: u32,
    pub line_total: Money,
}

/// An order as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    pub id: String,
    #[serde(skip)]
    pub user_id: String,
    pub status: Status,
    pub currency: String,
    pub lines: Vec<OrderLine>,
    pub subtotal: Money,
    pub total: Money,
    pub refunded: Money,
    pub shipping_address: Option<Address>,
    pub tracking: Option<Json>,
    /// Problems an admin must look at (amount mismatch, paid after cancel...).
    pub flags: Vec<String>,
    /// When an unpaid order lapses (Unix seconds).
    pub expires_at: i64,
    pub created_at: String,
    pub updated_at: String,
}

fn money(amount: i64, currency: &str) -> Result<Money, DbError> {
    Currency::parse(currency)
        .map(|c| Money::new(amount, c))
        .map_err(|e| DbError::Other(e.to_string()))
}

fn order_from_row(r: &Row<'_>, lines: Vec<OrderLine>) -> Result<Order, DbError> {
    let currency = r.text("currency")?;
    let status = r.text("status")?;
    let tracking = match (r.opt_text("carrier")?, r.opt_text("tracking_number")?) {
        (Some(carrier), Some(number)) => Some(json!({ "carrier": carrier, "number": number })),
        _ => None,
    };
    Ok(Order {
        id: r.text("id")?,
        user_id: r.text("user_id")?,
        status: Status::parse(&status).ok_or_else(|| DbError::Other(format!("unknown status {status}")))?,
        subtotal: money(r.int("subtotal_minor")?, &currency)?,
        total: money(r.int("total_minor")?, &currency)?,
        refunded: money(r.int("refunded_minor")?, &currency)?,
        currency,
        lines,
        shipping_address: r
            .opt_text("shipping_address")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| DbError::Other(e.to_string()))?,
        tracking,
        flags: serde_json::from_str(&r.text("flags")?).map_err(|e| DbError::Other(e.to_string()))?,
        expires_at: r.int("expires_at")?,
        created_at: r.text("created_at")?,
        updated_at: r.text("updated_at")?,
    })
}

fn lines_of(db: &dyn Db, order_id: &str, currency: &str) -> Result<Vec<OrderLine>, DbError> {
    db.query("SELECT * FROM order_lines WHERE order_id = ? ORDER BY line_no", &[order_id.into()])?
        .iter()
        .map(|r| {
            Ok(OrderLine {
                product_id: r.text("product_id")?,
                sku: r.text("sku")?,
                name: r.text("name")?,
                unit_price: money(r.int("unit_price_minor")?, currency)?,
                quantity: r.int("quantity")? as u32,
                line_total: money(r.int("line_total_minor")?, currency)?,
            })
        })
        .collect()
}

/// One order with its lines.
pub fn load(db: &dyn Db, id: &str) -> Result<Option<Order>, DbError> {
    let rows = db.query("SELECT * FROM orders WHERE id = ?", &[id.into()])?;
    let Some(r) = rows.first() else { return Ok(None) };
    let lines = lines_of(db, id, &r.text("currency")?)?;
    Ok(Some(order_from_row(&r, lines)?))
}

/// One order with its lines, its row locked until the caller's transaction
/// ends. On Postgres (`SELECT ... FOR UPDATE`) a concurrent transaction on
/// the same order waits here and then reads the order as the first left it;
/// on SQLite `BEGIN IMMEDIATE` already serialises writers, so it is [`load`].
pub fn load_locked(tx: &dyn Db, id: &str) -> Result<Option<Order>, DbError> {
    if tx.dialect() == storage::Dialect::Postgres {
        tx.execute("SELECT id FROM orders WHERE id = ? FOR UPDATE", &[id.into()])?;
    }
    load(tx, id)
}

/// A user's orders, newest first.
pub fn list_for_user(db: &dyn Db, user_id: &str, limit: u32, offset: i64) -> Result<(Vec<Order>, i64), DbError> {
    let total = db
        .query("SELECT COUNT(*) AS n FROM orders WHERE user_id = ?", &[user_id.into()])?
        .first()
        .map(|r| r.int("n"))
        .transpose()?
        .unwrap_or(0);
    let rows = db.query(
        "SELECT * FROM orders WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        &[user_id.into(), (limit as i64).into(), offset.into()],
    )?;
    let mut out = Vec::new();
    for r in rows.iter() {
        let id = r.text("id")?;
        let lines = lines_of(db, &id, &r.text("currency")?)?;
        out.push(order_from_row(&r, lines)?);
    }
    Ok((out, total))
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub from: Option<String>,
    pub to: String,
    pub actor: String,
    pub reason: String,
    pub at: String,
}

pub fn history(db: &dyn Db, order_id: &str) -> Result<Vec<HistoryEntry>, DbError> {
    db.query("SELECT * FROM order_history WHERE order_id = ? ORDER BY id", &[order_id.into()])?
        .iter()
        .map(|r| {
            Ok(HistoryEntry {
                from: r.opt_text("from_status")?,
                to: r.text("to_status")?,
                actor: r.text("actor")?,
                reason: r.text("reason")?,
                at: r.text("at")?,
            })
        })
        .collect()
}

/// Append a domain event to the outbox (idempotent per type and key).
pub fn record_event(db: &dyn Db, event_type: &str, key: &str, payload: &Json) -> Result<(), DbError> {
    storage::outbox::record(db, event_type, key, &payload.to_string(), &clock::now_rfc3339())
}

/// The outbox event a status change produces, if any.
fn event_for(status: Status) -> Option<&'static str> {
    match status {
        Status::PendingPayment => Some("order.placed"),
        Status::Paid => Some("order.paid"),
        Status::Shipped => Some("order.shipped"),
        Status::Cancelled => Some("order.cancelled"),
        Status::Expired => Some("order.expired"),
        Status::Refunded | Status::PartiallyRefunded => Some("order.refunded"),
        _ => None,
    }
}

fn event_payload(order: &Order, to: Status) -> Json {
    json!({ "order_id": order.id, "user_id": order.user_id, "status": to, "order": order })
}

/// Why a use case refused.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderError {
    NotFound,
    Transition(crate::domain::InvalidTransition),
    Storage(DbError),
}

impl From<DbError> for OrderError {
    fn from(e: DbError) -> Self {
        Self::Storage(e)
    }
}

/// Move an order to `to` (checked), with a history row and its outbox event,
/// in the caller's transaction. Returns the updated order.
pub fn transition(tx: &dyn Db, order: &Order, to: Status, actor: &str, reason: &str) -> Result<Order, OrderError> {
    order.status.to(to).map_err(OrderError::Transition)?;
    let now = clock::now_rfc3339();
    // Only from the status the caller saw: an order changed since (by a
    // concurrent transaction, on Postgres) is refused, never moved twice.
    let moved = tx.query(
        "UPDATE orders SET status = ?, updated_at = ? WHERE id = ? AND status = ? RETURNING id",
        &[to.as_str().into(), now.as_str().into(), order.id.as_str().into(), order.status.as_str().into()],
    )?;
    if moved.is_empty() {
        let current = load(tx, &order.id)?.ok_or(OrderError::NotFound)?;
        return Err(OrderError::Transition(crate::domain::InvalidTransition { from: current.status, to }));
    }
    tx.execute(
        "INSERT INTO order_history (order_id, from_status, to_status, actor, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
        &[order.id.as_str().into(), order.status.as_str().into(), to.as_str().into(), actor.into(), reason.into(), now.as_str().into()],
    )?;
    let updated = load(tx, &order.id)?.ok_or(OrderError::NotFound)?;
    if let Some(event) = event_for(to) {
        let key = match to {
            Status::Refunded | Status::PartiallyRefunded => format!("{}:{}", order.id, updated.refunded.amount_minor),
            _ => order.id.clone(),
        };
        record_event(tx, event, &key, &event_payload(&updated, to))?;
    }
    Ok(updated)
}

/// Add a problem for an admin to look at (once).
pub fn flag(tx: &dyn Db, order: &Order, problem: &str) -> Result<(), DbError> {
    if order.flags.iter().any(|f| f == problem) {
        return Ok(());
    }
    let mut flags = order.flags.clone();
    flags.push(problem.to_string());
    tx.execute(
        "UPDATE orders SET flags = ?, updated_at = ? WHERE id = ?",
        &[json!(flags).to_string().into(), clock::now_rfc3339().into(), order.id.as_str().into()],
    )
}

/// A new order, ready to insert.
pub struct NewOrder {
    pub id: String,
    pub user_id: String,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    pub shipping_address: Option<Address>,
    pub expires_at: i64,
}

/// Insert a `pending_payment` order with its lines, first history row and
/// `order.placed` event.
pub fn insert(tx: &dyn Db, o: &NewOrder, actor: &str) -> Result<Order, OrderError> {
    let subtotal = o
        .lines
        .iter()
        .try_fold(Money::zero(o.currency), |acc, l| acc.checked_add(l.line_total))
        .map_err(|e| OrderError::Storage(DbError::Other(e.to_string())))?;
    let now = clock::now_rfc3339();
    tx.execute(
        "INSERT INTO orders (id, user_id, status, currency, subtotal_minor, total_minor, shipping_address, expires_at, created_at, updated_at) \
         VALUES (?, ?, 'pending_payment', ?, ?, ?, ?, ?, ?, ?)",
        &[
            o.id.as_str().into(),
            o.user_id.as_str().into(),
            o.currency.code().into(),
            subtotal.amount_minor.into(),
            subtotal.amount_minor.into(),
            o.shipping_address.as_ref().map(|a| json!(a).to_string()).into(),
            o.expires_at.into(),
            now.as_str().into(),
            now.as_str().into(),
        ],
    )?;
    // All lines in one statement: each statement costs a parse in a fresh
    // per-request connection.
    let marks = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; o.lines.len()].join(", ");
    let mut params: Vec<storage::Value> = Vec::with_capacity(o.lines.len() * 8);
    for (i, l) in o.lines.iter().enumerate() {
        params.extend([
            o.id.as_str().into(),
            (i as i64 + 1).into(),
            l.product_id.as_str().into(),
            l.sku.as_str().into(),
            l.name.as_str().into(),
            l.unit_price.amount_minor.into(),
            l.quantity.into(),
            l.line_total.amount_minor.into(),
        ]);
    }
    if !o.lines.is_empty() {
        tx.execute(
            &format!("INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit_price_minor, quantity, line_total_minor) VALUES {marks}"),
            &params,
        )?;
    }
    tx.execute(
        "INSERT INTO order_history (order_id, from_status, to_status, actor, reason, at) VALUES (?, NULL, 'pending_payment', ?, 'placed', ?)",
        &[o.id.as_str().into(), actor.into(), now.as_str().into()],
    )?;
    // Exactly what was just written, without reading it back.
    let order = Order {
        id: o.id.clone(),
        user_id: o.user_id.clone(),
        status: Status::PendingPayment,
        currency: o.currency.code().to_string(),
        lines: o.lines.clone(),
        subtotal,
        total: subtotal,
        refunded: Money::zero(o.currency),
        shipping_address: o.shipping_address.clone(),
        tracking: None,
        flags: Vec::new(),
        expires_at: o.expires_at,
        created_at: now.clone(),
        updated_at: now,
    };
    record_event(tx, "order.placed", &o.id, &event_payload(&order, Status::PendingPayment))?;
    Ok(order)
}

/// Set carrier and tracking number.
pub fn set_tracking(tx: &dyn Db, order_id: &str, carrier: &str, number: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE orders SET carrier = ?, tracking_number = ?, updated_at = ? WHERE id = ?",
        &[carrier.into(), number.into(), clock::now_rfc3339().into(), order_id.into()],
    )
}

/// Record the total refunded so far (monotonic: never lowered).
pub fn set_refunded(tx: &dyn Db, order_id: &str, total_refunded: i64) -> Result<(), DbError> {
    tx.execute(
        &format!("UPDATE orders SET refunded_minor = {}(refunded_minor, ?), updated_at = ? WHERE id = ?", tx.dialect().greatest()),
        &[total_refunded.into(), clock::now_rfc3339().into(), order_id.into()],
    )
}

/// Move a pending order's expiry later (never earlier), after its stock
/// hold was extended to match.
pub fn extend_expiry(db: &dyn Db, order_id: &str, until: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE orders SET expires_at = ?, updated_at = ? WHERE id = ? AND status = 'pending_payment' AND expires_at < ?",
        &[until.into(), clock::now_rfc3339().into(), order_id.into(), until.into()],
    )
}

/// Ids of `pending_payment` orders past their expiry.
pub fn overdue(db: &dyn Db, now: i64, limit: u32) -> Result<Vec<String>, DbError> {
    db.query(
        "SELECT id FROM orders WHERE status = 'pending_payment' AND expires_at <= ? ORDER BY expires_at LIMIT ?",
        &[now.into(), (limit as i64).into()],
    )?
    .iter()
    .map(|r| r.text("id"))
    .collect()
}

// ---------------------------------------------------------------- idempotent placement

/// What an `Idempotency-Key` says about a new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: go ahead (and call [`complete_request`] or [`abandon_request`]).
    New,
    /// Same key, same body, finished: answer with this order again.
    Replay(String),
    /// Same key, different body.
    Mismatch,
    /// Same key, same body, still being processed by another request.
    InFlight,
}

/// How long a claim without an order may stand before a retry with the
/// same key takes it over: the claiming request died (a trap, a lost
/// database) without abandoning it. Far longer than placing an order takes;
/// a request that is merely that slow loses its claim and cannot finish
/// (see [`complete_request`]), so one key still makes at most one order.
pub const CLAIM_TIMEOUT_SECS: i64 = 60;

/// Claim an `Idempotency-Key` for a new order, or say what it already means.
///
/// The claim is one atomic `INSERT ... ON CONFLICT DO NOTHING`: exactly one
/// of several concurrent requests with the same key inserts the row (on
/// Postgres the others wait for its transaction and then see the conflict),
/// and no write lock is held across statements. A claim older than
/// [`CLAIM_TIMEOUT_SECS`] with no order is taken over by one conditional
/// update, so a retry after a dead request succeeds. The claim is
/// identified by `now` (its `created_at`), which [`complete_request`] checks.
pub fn claim_request(db: &dyn Db, user_id: &str, key: &str, hash: &str, now: i64) -> Result<Claim, DbError> {
    for _ in 0..3 {
        if let Some(claim) = try_claim(db, user_id, key, hash, now)? {
            return Ok(claim);
        }
    }
    Ok(Claim::InFlight)
}

/// One attempt; `None` when the other request abandoned its claim between
/// our two statements (then the key is free again).
fn try_claim(db: &dyn Db, user_id: &str, key: &str, hash: &str, now: i64) -> Result<Option<Claim>, DbError> {
    let inserted = db.query(
        "INSERT INTO order_requests (user_id, idempotency_key, request_hash, created_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING user_id",
        &[user_id.into(), key.into(), hash.into(), now.into()],
    )?;
    if !inserted.is_empty() {
        return Ok(Some(Claim::New));
    }
    let rows = db.query(
        "SELECT request_hash, order_id FROM order_requests WHERE user_id = ? AND idempotency_key = ?",
        &[user_id.into(), key.into()],
    )?;
    let Some(r) = rows.first() else { return Ok(None) };
    if r.text("request_hash")? != hash {
        return Ok(Some(Claim::Mismatch));
    }
    if let Some(id) = r.opt_text("order_id")? {
        return Ok(Some(Claim::Replay(id)));
    }
    let taken = db.query(
        "UPDATE order_requests SET created_at = ? \
         WHERE user_id = ? AND idempotency_key = ? AND request_hash = ? AND order_id IS NULL AND created_at <= ? \
         RETURNING user_id",
        &[now.into(), user_id.into(), key.into(), hash.into(), (now - CLAIM_TIMEOUT_SECS).into()],
    )?;
    Ok(Some(if taken.is_empty() { Claim::InFlight } else { Claim::New }))
}

/// Record the order made under the claim taken at `claimed_at`, inside the
/// transaction that inserts the order. Fails with a constraint error (so
/// the transaction, and the order, roll back) when the claim is no longer
/// this request's: another request took it over after it timed out.
pub fn complete_request(tx: &dyn Db, user_id: &str, key: &str, claimed_at: i64, order_id: &str) -> Result<(), DbError> {
    let done = tx.query(
        "UPDATE order_requests SET order_id = ? \
         WHERE user_id = ? AND idempotency_key = ? AND created_at = ? AND order_id IS NULL RETURNING user_id",
        &[order_id.into(), user_id.into(), key.into(), claimed_at.into()],
    )?;
    if done.is_empty() {
        return Err(DbError::Constraint("the Idempotency-Key claim was taken over by a later request".into()));
    }
    Ok(())
}

/// Forget the claim taken at `claimed_at` when its request failed, so the
/// client can retry with the same key (a claim another request has since
/// taken over is left alone).
pub fn abandon_request(db: &dyn Db, user_id: &str, key: &str, claimed_at: i64) -> Result<(), DbError> {
    db.execute(
        "DELETE FROM order_requests WHERE user_id = ? AND idempotency_key = ? AND created_at = ? AND order_id IS NULL",
        &[user_id.into(), key.into(), claimed_at.into()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    pub fn db() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        db
    }

    fn usd(n: i64) -> Money {
        Money::new(n, Currency::parse("USD").unwrap())
    }

    fn new_order(id: &str) -> NewOrder {
        NewOrder {
            id: id.into(),
            user_id: "u1".into(),
            currency: Currency::parse("USD").unwrap(),
            lines: vec![
                OrderLine { product_id: "p1".into(), sku: "A".into(), name: "A".into(), unit_price: usd(250), quantity: 2, line_total: usd(500) },
                OrderLine { product_id: "p2".into(), sku: "B".into(), name: "B".into(), unit_price: usd(99), quantity: 1, line_total: usd(99) },
            ],
            shipping_address: None,
            expires_at: 2000,
        }
    }

    fn events(db: &MemDb) -> Vec<String> {
        db.query("SELECT event_type FROM outbox ORDER BY id", &[]).unwrap().iter().map(|r| r.text("event_type").unwrap()).collect()
    }


    #[test]
    fn refunds_use_greatest_on_postgres() {
        let db = storage::native::Recorder::postgres();
        set_refunded(&db, "o1", 500).unwrap();
        assert!(db.statements()[0].starts_with("UPDATE orders SET refunded_minor = GREATEST(refunded_minor, ?)"), "{:?}", db.statements());
    }

    #[test]
    fn placing_writes_totals_history_and_an_event() {
        let db = db();
        let o = insert(&db, &new_order("o1"), "user:u1").unwrap();
        assert_eq!(load(&db, "o1").unwrap().unwrap(), o, "the order returned is the order stored");
        assert_eq!((o.status, o.subtotal, o.total), (Status::PendingPayment, usd(599), usd(599)));
        assert_eq!(history(&db, "o1").unwrap().len(), 1);
        assert_eq!(events(&db), vec!["order.placed"]);
    }

    #[test]
    fn transitions_are_checked_recorded_and_evented_once() {
        let db = db();
        let o = insert(&db, &new_order("o1"), "user:u1").unwrap();
        let paid = transition(&db, &o, Status::Paid, "stripe", "checkout.session.completed").unwrap();
        assert_eq!(paid.status, Status::Paid);
        assert!(matches!(transition(&db, &paid, Status::Paid, "stripe", "again"), Err(OrderError::Transition(_))));
        assert!(matches!(transition(&db, &paid, Status::Expired, "sweep", "late"), Err(OrderError::Transition(_))));
        let h = history(&db, "o1").unwrap();
        assert_eq!((h[1].from.as_deref(), h[1].to.as_str(), h[1].actor.as_str()), (Some("pending_payment"), "paid", "stripe"));
        // The same event cannot be recorded twice.
        record_event(&db, "order.paid", "o1", &json!({})).unwrap();
        assert_eq!(events(&db), vec!["order.placed", "order.paid"]);
    }

    #[test]
    fn idempotency_claims() {
        let db = db();
        assert_eq!(claim_request(&db, "u1", "k", "h1", 1).unwrap(), Claim::New);
        assert_eq!(claim_request(&db, "u1", "k", "h1", 1).unwrap(), Claim::InFlight);
        assert_eq!(claim_request(&db, "u1", "k", "h2", 1).unwrap(), Claim::Mismatch);
        assert_eq!(claim_request(&db, "u2", "k", "h2", 1).unwrap(), Claim::New, "keys are per user");
        complete_request(&db, "u1", "k", 1, "o1").unwrap();
        assert_eq!(claim_request(&db, "u1", "k", "h1", 1).unwrap(), Claim::Replay("o1".into()));
        abandon_request(&db, "u2", "k", 1).unwrap();
        assert_eq!(claim_request(&db, "u2", "k", "h3", 1).unwrap(), Claim::New);
    }

    #[test]
    fn a_claim_whose_request_died_is_taken_over_after_the_timeout() {
        let db = db();
        assert_eq!(claim_request(&db, "u1", "k", "h1", 100).unwrap(), Claim::New);
        // The request died without completing or abandoning its claim.
        assert_eq!(claim_request(&db, "u1", "k", "h1", 100 + CLAIM_TIMEOUT_SECS - 1).unwrap(), Claim::InFlight);
        assert_eq!(claim_request(&db, "u1", "k", "h2", 100 + CLAIM_TIMEOUT_SECS).unwrap(), Claim::Mismatch, "only the same request");
        let retry_at = 100 + CLAIM_TIMEOUT_SECS;
        assert_eq!(claim_request(&db, "u1", "k", "h1", retry_at).unwrap(), Claim::New);
        assert_eq!(claim_request(&db, "u1", "k", "h1", retry_at).unwrap(), Claim::InFlight, "one taker");
        // The original, had it only been slow, can no longer finish.
        assert!(matches!(complete_request(&db, "u1", "k", 100, "o-slow"), Err(DbError::Constraint(_))));
        complete_request(&db, "u1", "k", retry_at, "o-retry").unwrap();
        assert_eq!(claim_request(&db, "u1", "k", "h1", retry_at + 500).unwrap(), Claim::Replay("o-retry".into()));
    }

    #[test]
    fn refunds_only_grow() {
        let db = db();
        insert(&db, &new_order("o1"), "u").unwrap();
        set_refunded(&db, "o1", 300).unwrap();
        set_refunded(&db, "o1", 100).unwrap();
        assert_eq!(load(&db, "o1").unwrap().unwrap().refunded, usd(300));
    }
}
