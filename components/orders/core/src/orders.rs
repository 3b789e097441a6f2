//! Orders: the SQL and the use cases that change them. Every status change
//! goes through [`transition`], which checks the state machine and writes
//! the history row and the outbox event in the caller's transaction.

use crate::domain::{Address, Status};
use money::{Currency, Money};
use serde::Serialize;
use serde_json::{json, Value as Json};
use storage::{Db, DbError, Row, Value};

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

fn line_from_row(r: &Row<'_>, currency: &str) -> Result<OrderLine, DbError> {
    Ok(OrderLine {
        product_id: r.text("product_id")?,
        sku: r.text("sku")?,
        name: r.text("name")?,
        unit_price: money(r.int("unit_price_minor")?, currency)?,
        quantity: r.int("quantity")? as u32,
        line_total: money(r.int("line_total_minor")?, currency)?,
    })
}

fn lines_of(db: &dyn Db, order_id: &str, currency: &str) -> Result<Vec<OrderLine>, DbError> {
    db.query("SELECT * FROM order_lines WHERE order_id = ? ORDER BY line_no", &[order_id.into()])?
        .iter()
        .map(|r| line_from_row(&r, currency))
        .collect()
}

/// A page of orders matching `clause` (`""` or ` WHERE ...` over `orders`,
/// with `params`), newest first, with the total across pages: three
/// queries whatever the page size (the count, the page, and every line of
/// the page at once).
pub fn list_page(db: &dyn Db, clause: &str, params: &[Value], limit: u32, offset: i64) -> Result<(Vec<Order>, i64), DbError> {
    let total = db
        .query(&format!("SELECT COUNT(*) AS n FROM orders{clause}"), params)?
        .first()
        .map(|r| r.int("n"))
        .transpose()?
        .unwrap_or(0);
    let mut page_params = params.to_vec();
    page_params.push((limit as i64).into());
    page_params.push(offset.into());
    let rows = db.query(&format!("SELECT * FROM orders{clause} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"), &page_params)?;
    if rows.is_empty() {
        return Ok((Vec::new(), total));
    }
    let ids: Vec<Value> = rows.iter().map(|r| r.text("id").map(Value::from)).collect::<Result<_, _>>()?;
    let marks = vec!["?"; ids.len()].join(", ");
    let all_lines = db.query(&format!("SELECT * FROM order_lines WHERE order_id IN ({marks}) ORDER BY order_id, line_no"), &ids)?;
    let mut lines_by_order: std::collections::HashMap<String, Vec<Row<'_>>> = std::collections::HashMap::new();
    for l in all_lines.iter() {
        lines_by_order.entry(l.text("order_id")?).or_default().push(l);
    }
    let mut out = Vec::with_capacity(ids.len());
    for r in rows.iter() {
        let currency = r.text("currency")?;
        let lines = lines_by_order
            .remove(&r.text("id")?)
            .unwrap_or_default()
            .iter()
            .map(|l| line_from_row(l, &currency))
            .collect::<Result<_, _>>()?;
        out.push(order_from_row(&r, lines)?);
    }
    Ok((out, total))
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
    lock(tx, id)?;
    load(tx, id)
}

/// Lock the order's row for the rest of the transaction without reading
/// it (on Postgres; SQLite's write transaction already holds the database):
/// for a transaction that must take it before other rows, in the order
/// every order change takes them.
pub fn lock(tx: &dyn Db, id: &str) -> Result<(), DbError> {
    if tx.dialect() == storage::Dialect::Postgres {
        tx.execute("SELECT id FROM orders WHERE id = ? FOR UPDATE", &[id.into()])?;
    }
    Ok(())
}

/// A user's orders, newest first.
pub fn list_for_user(db: &dyn Db, user_id: &str, limit: u32, offset: i64) -> Result<(Vec<Order>, i64), DbError> {
    list_page(db, " WHERE user_id = ?", &[user_id.into()], limit, offset)
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
    http_kit::outbox::record(db, event_type, key, payload)
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
    /// The account already has an order of this cart version ([`insert`]).
    CartOrdered,
    /// A card dispute of the order is open or was lost: it is not
    /// fulfilled ([`crate::disputes`]). The move refused.
    Disputed(crate::domain::InvalidTransition),
    Storage(DbError),
}

/// The account's order placed from this cart version, if any.
pub fn of_cart_version(db: &dyn Db, user_id: &str, cart_version: i64) -> Result<Option<String>, DbError> {
    db.query("SELECT id FROM orders WHERE user_id = ? AND cart_version = ?", &[user_id.into(), cart_version.into()])?
        .first()
        .map(|r| r.text("id"))
        .transpose()
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
    // Read once the row is locked by the change above: a dispute recorded
    // by a payment event (which locks the row first) has committed by then,
    // and the caller's transaction is undone with this refusal.
    if matches!(to, Status::Processing | Status::Shipped) && crate::disputes::block_fulfilment(tx, &order.id)? {
        return Err(OrderError::Disputed(crate::domain::InvalidTransition { from: order.status, to }));
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
        let mut payload = event_payload(&updated, to);
        if to == Status::Paid {
            // The paid email links to the invoice issued in this transaction.
            if let Some(invoice) = crate::invoices::invoice_of(tx, &order.id)? {
                payload["invoice"] = json!({ "number": invoice.number, "url": invoice.document["url"] });
            }
        }
        record_event(tx, event, &key, &payload)?;
    }
    Ok(updated)
}

/// Record something that happened to the order without changing its status
/// (a restock): a history row from and to its current status.
pub fn note(tx: &dyn Db, order: &Order, actor: &str, reason: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO order_history (order_id, from_status, to_status, actor, reason, at) \
         SELECT id, status, status, ?, ?, ? FROM orders WHERE id = ?",
        &[actor.into(), reason.into(), clock::now_rfc3339().into(), order.id.as_str().into()],
    )
}

/// Take a problem off the order's flags (one that resolved itself: a
/// dispute won), in one statement, as [`flag`] adds one.
pub fn unflag(tx: &dyn Db, order_id: &str, problem: &str) -> Result<(), DbError> {
    let sql = match tx.dialect() {
        storage::Dialect::Postgres => "UPDATE orders SET flags = (flags::jsonb - ?::text)::text, updated_at = ? WHERE id = ? AND flags::jsonb @> jsonb_build_array(?::text)",
        _ => {
            "UPDATE orders SET flags = (SELECT COALESCE(json_group_array(value), '[]') FROM json_each(orders.flags) WHERE value <> ?), updated_at = ? \
             WHERE id = ? AND EXISTS (SELECT 1 FROM json_each(orders.flags) WHERE value = ?)"
        }
    };
    tx.execute(sql, &[problem.into(), clock::now_rfc3339().into(), order_id.into(), problem.into()])
}

/// Add a problem for an admin to look at (once). Appended to the flags the
/// row has now, in one statement: the caller's copy of the order may be
/// older than a flag another request (or an earlier step of this one) added
/// since, and writing the copy's list back would drop it.
pub fn flag(tx: &dyn Db, order: &Order, problem: &str) -> Result<(), DbError> {
    if order.flags.iter().any(|f| f == problem) {
        return Ok(());
    }
    let sql = match tx.dialect() {
        storage::Dialect::Postgres => {
            "UPDATE orders SET flags = (flags::jsonb || jsonb_build_array(?::text))::text, updated_at = ? \
             WHERE id = ? AND NOT flags::jsonb @> jsonb_build_array(?::text)"
        }
        _ => {
            "UPDATE orders SET flags = json_insert(flags, '$[#]', ?), updated_at = ? \
             WHERE id = ? AND NOT EXISTS (SELECT 1 FROM json_each(orders.flags) WHERE value = ?)"
        }
    };
    tx.execute(sql, &[problem.into(), clock::now_rfc3339().into(), order.id.as_str().into(), problem.into()])
}

/// A new order, ready to insert.
pub struct NewOrder {
    pub id: String,
    pub user_id: String,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
    pub shipping_address: Option<Address>,
    pub expires_at: i64,
    /// The version of the cart it is placed from: one order per account
    /// and cart version ([`insert`] answers [`OrderError::CartOrdered`]).
    pub cart_version: Option<i64>,
}

/// Insert a `pending_payment` order with its lines, first history row and
/// `order.placed` event. [`OrderError::CartOrdered`] when the account
/// already has an order of this cart version (the transaction must then
/// be rolled back: on Postgres it is aborted).
pub fn insert(tx: &dyn Db, o: &NewOrder, actor: &str) -> Result<Order, OrderError> {
    let subtotal = o
        .lines
        .iter()
        .try_fold(Money::zero(o.currency), |acc, l| acc.checked_add(l.line_total))
        .map_err(|e| OrderError::Storage(DbError::Other(e.to_string())))?;
    let now = clock::now_rfc3339();
    tx.execute(
        "INSERT INTO orders (id, user_id, status, currency, subtotal_minor, total_minor, shipping_address, expires_at, cart_version, created_at, updated_at) \
         VALUES (?, ?, 'pending_payment', ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            o.id.as_str().into(),
            o.user_id.as_str().into(),
            o.currency.code().into(),
            subtotal.amount_minor.into(),
            subtotal.amount_minor.into(),
            o.shipping_address.as_ref().map(|a| json!(a).to_string()).into(),
            o.expires_at.into(),
            o.cart_version.into(),
            now.as_str().into(),
            now.as_str().into(),
        ],
    )
    .map_err(|e| match e {
        DbError::Constraint(m) if m.contains("cart_version") => OrderError::CartOrdered,
        other => OrderError::Storage(other),
    })?;
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

/// Bring a pending order's expiry forward to `now` (never later): its
/// stock hold has ended already, as the catalog found.
pub fn end_now(db: &dyn Db, order_id: &str, now: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE orders SET expires_at = ?, updated_at = ? WHERE id = ? AND status = 'pending_payment' AND expires_at > ?",
        &[now.into(), clock::now_rfc3339().into(), order_id.into(), now.into()],
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
//
// An `Idempotency-Key` costs no write of its own: it is looked up before any
// work (a read), and recorded in the transaction that inserts the order.
// Two requests with one key that both get past the look-up race to record
// it; the primary key lets exactly one of them in (on Postgres the second
// `INSERT` waits for the first transaction and then sees its row), and the
// other rolls back, gives its stock hold back and answers with the
// winner's order. No claim without an order is ever written, so a request
// that dies leaves nothing behind and a retry simply runs.

/// What an `Idempotency-Key` already means for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not used yet by this user: go ahead.
    Fresh,
    /// Same key, same body: this order was placed under it.
    Replay(String),
    /// Same key, different body.
    Mismatch,
}

/// Look the key up before placing (no write, no lock).
pub fn lookup_request(db: &dyn Db, user_id: &str, key: &str, hash: &str) -> Result<Seen, DbError> {
    let rows = db.query(
        "SELECT request_hash, order_id FROM order_requests WHERE user_id = ? AND idempotency_key = ?",
        &[user_id.into(), key.into()],
    )?;
    let Some(r) = rows.first() else { return Ok(Seen::Fresh) };
    // A row without an order is a claim left by an older build whose
    // request never finished: it binds nothing.
    let Some(order_id) = r.opt_text("order_id")? else { return Ok(Seen::Fresh) };
    Ok(if r.text("request_hash")? == hash { Seen::Replay(order_id) } else { Seen::Mismatch })
}

/// Record `order_id` under the key, inside the transaction that inserts the
/// order and before anything else in it. `Seen::Fresh` means recorded: go
/// on. Anything else means another request with this key recorded its
/// order first, and this transaction wrote nothing: answer with what it
/// says instead (a claim left by an older build is taken over).
pub fn record_request(tx: &dyn Db, user_id: &str, key: &str, hash: &str, now: i64, order_id: &str) -> Result<Seen, DbError> {
    let recorded = tx.query(
        "INSERT INTO order_requests (user_id, idempotency_key, request_hash, order_id, created_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (user_id, idempotency_key) DO UPDATE \
         SET request_hash = excluded.request_hash, order_id = excluded.order_id, created_at = excluded.created_at \
         WHERE order_requests.order_id IS NULL RETURNING user_id",
        &[user_id.into(), key.into(), hash.into(), order_id.into(), now.into()],
    )?;
    if !recorded.is_empty() {
        return Ok(Seen::Fresh);
    }
    match lookup_request(tx, user_id, key, hash)? {
        // Only a row with an order blocks the upsert, so this cannot be.
        Seen::Fresh => Err(DbError::Other("the Idempotency-Key row changed while it was recorded".into())),
        other => Ok(other),
    }
}

/// Order `o1` of user `u1`: two units of product `p1` (SKU `A`) at 2.50 USD,
/// placed in a migrated checkout database. For unit tests of this crate.
#[cfg(test)]
pub(crate) fn test_order(db: &dyn Db) -> Order {
    let usd = |n| Money::new(n, Currency::parse("USD").unwrap());
    let new = NewOrder {
        id: "o1".into(),
        user_id: "u1".into(),
        currency: Currency::parse("USD").unwrap(),
        lines: vec![OrderLine { product_id: "p1".into(), sku: "A".into(), name: "A".into(), unit_price: usd(250), quantity: 2, line_total: usd(500) }],
        shipping_address: None,
        expires_at: 2000,
        cart_version: None,
    };
    storage::transaction(db, |tx| insert(tx, &new, "user:u1")).unwrap()
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
            cart_version: None,
        }
    }

    /// One order per account and cart version; orders of no version, or of
    /// other accounts, are not held back.
    #[test]
    fn a_cart_version_is_ordered_once() {
        let db = db();
        let of_cart = |id: &str, user: &str, v: Option<i64>| NewOrder { user_id: user.into(), cart_version: v, ..new_order(id) };
        insert(&db, &of_cart("o1", "u1", Some(7)), "user:u1").unwrap();
        assert!(matches!(insert(&db, &of_cart("o2", "u1", Some(7)), "user:u1"), Err(OrderError::CartOrdered)));
        insert(&db, &of_cart("o3", "u1", Some(8)), "user:u1").unwrap();
        insert(&db, &of_cart("o4", "u2", Some(7)), "user:u2").unwrap();
        insert(&db, &of_cart("o5", "u1", None), "user:u1").unwrap();
        insert(&db, &of_cart("o6", "u1", None), "user:u1").unwrap();
        assert_eq!(of_cart_version(&db, "u1", 7).unwrap().as_deref(), Some("o1"));
        assert_eq!(of_cart_version(&db, "u1", 9).unwrap(), None);
    }

    #[test]
    fn flags_added_from_one_old_copy_are_all_kept_and_each_once() {
        let db = db();
        let stale = storage::transaction(&db, |tx| insert(tx, &new_order("o1"), "user:u1")).unwrap();
        flag(&db, &stale, "restock_failed").unwrap();
        flag(&db, &stale, "refund_failed").unwrap();
        flag(&db, &stale, "restock_failed").unwrap();
        let now = load(&db, "o1").unwrap().unwrap();
        assert_eq!(now.flags, vec!["restock_failed".to_string(), "refund_failed".to_string()]);
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
    fn an_idempotency_key_is_recorded_with_its_order_once() {
        let db = db();
        assert_eq!(lookup_request(&db, "u1", "k", "h1").unwrap(), Seen::Fresh);
        assert_eq!(record_request(&db, "u1", "k", "h1", 1, "o1").unwrap(), Seen::Fresh);
        // A twin that looked before the first recorded loses, and learns the winner.
        assert_eq!(record_request(&db, "u1", "k", "h1", 2, "o2").unwrap(), Seen::Replay("o1".into()));
        assert_eq!(record_request(&db, "u1", "k", "h2", 2, "o3").unwrap(), Seen::Mismatch);
        assert_eq!(lookup_request(&db, "u1", "k", "h1").unwrap(), Seen::Replay("o1".into()));
        assert_eq!(lookup_request(&db, "u1", "k", "h2").unwrap(), Seen::Mismatch);
        assert_eq!(lookup_request(&db, "u2", "k", "h2").unwrap(), Seen::Fresh, "keys are per user");
        assert_eq!(record_request(&db, "u2", "k", "h2", 3, "o4").unwrap(), Seen::Fresh);
    }

    #[test]
    fn a_claim_left_by_an_older_build_binds_nothing() {
        let db = db();
        db.execute(
            "INSERT INTO order_requests (user_id, idempotency_key, request_hash, order_id, created_at) VALUES ('u1', 'k', 'h1', NULL, 1)",
            &[],
        )
        .unwrap();
        assert_eq!(lookup_request(&db, "u1", "k", "h1").unwrap(), Seen::Fresh);
        assert_eq!(record_request(&db, "u1", "k", "h1", 5, "o1").unwrap(), Seen::Fresh);
        assert_eq!(lookup_request(&db, "u1", "k", "h1").unwrap(), Seen::Replay("o1".into()));
    }

    #[test]
    fn a_page_of_orders_carries_each_orders_own_lines() {
        let db = db();
        let mut one_line = new_order("o2");
        one_line.lines.truncate(1);
        one_line.user_id = "u2".into();
        for o in [new_order("o1"), one_line, new_order("o3")] {
            insert(&db, &o, "u").unwrap();
        }
        let (page, total) = list_page(&db, "", &[], 10, 0).unwrap();
        assert_eq!(total, 3);
        let lines: Vec<(String, Vec<String>)> = page.iter().map(|o| (o.id.clone(), o.lines.iter().map(|l| l.sku.clone()).collect())).collect();
        assert!(lines.contains(&("o2".into(), vec!["A".into()])), "{lines:?}");
        assert!(lines.contains(&("o1".into(), vec!["A".into(), "B".into()])), "{lines:?}");
        let (mine, total) = list_for_user(&db, "u1", 1, 1).unwrap();
        assert_eq!((mine.len(), total), (1, 2));
        assert_eq!(mine[0].lines.len(), 2);
        assert_eq!(list_page(&db, " WHERE user_id = ?", &["nobody".into()], 10, 0).unwrap(), (Vec::new(), 0));
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
