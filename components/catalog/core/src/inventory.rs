//! Stock reservations: the rules that make overselling impossible.
//!
//! Each product carries `reserved`, the units its live reservations hold;
//! available stock is `stock_on_hand - reserved`. Every change to it is a
//! conditional `UPDATE` in the same transaction as the reservation that
//! causes it — `reserved = reserved + n WHERE stock_on_hand - reserved >= n`
//! — so the check and the write are one atomic step on the row itself:
//! stock sold plus stock reserved never exceeds stock on hand (also a CHECK
//! constraint), and stock never goes negative, under any concurrency. This
//! holds on SQLite (whose `BEGIN IMMEDIATE` serialises writers anyway) and on
//! Postgres under its default READ COMMITTED isolation, where an `UPDATE`
//! that waited for a row lock re-evaluates its `WHERE` on the newest row.
//! A transaction locks its reservation first, then its products by id, so
//! two stock writes never wait for each other in a cycle. Lapsed holds are
//! given back before a write, in a transaction of their own
//! ([`sweep_due`]) that locks only their products, also in id order.
//!
//! A reservation that lapses (`expires_at` passed, nobody released it)
//! stops counting at once: reads subtract it (see `repository`), and the next
//! stock write sweeps it ([`sweep_due`]), giving its units back.
//!
//! All operations are idempotent per order id.

use crate::domain::ProductId;
use serde::Serialize;
use std::collections::BTreeMap;
use storage::{transaction, Db, DbError, Dialect, Value};

/// Reservations may be held from one second up to 24 hours (Stripe's
/// longest Checkout Session); checkout uses its session's lifetime.
pub const MIN_TTL_SECS: u32 = 1;
pub const MAX_TTL_SECS: u32 = 24 * 3600;
/// Limits on one reservation.
pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: u32 = 10_000;

/// One line to reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub product_id: ProductId,
    pub quantity: u32,
}

/// A line that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shortage {
    pub product_id: String,
    pub requested: u32,
    pub available: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveError {
    Insufficient(Vec<Shortage>),
    Invalid(String),
    Conflict(String),
    Storage(DbError),
}

impl From<DbError> for ReserveError {
    fn from(e: DbError) -> Self {
        Self::Storage(e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryError {
    UnknownOrder,
    Expired,
    AlreadyReleased,
    AlreadyCommitted,
    Storage(DbError),
}

impl From<DbError> for InventoryError {
    fn from(e: DbError) -> Self {
        Self::Storage(e)
    }
}

/// A reservation as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub order_id: String,
    /// `reserved`, `committed` or `released`.
    pub status: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// True while it holds stock (reserved and not expired).
    pub live: bool,
    pub lines: Vec<ReservedLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReservedLine {
    pub product_id: String,
    pub quantity: u32,
}

/// An order id as other services send it: 1–128 of `[A-Za-z0-9._:-]`.
pub fn parse_order_id(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(raw.to_string())
    } else {
        Err("order id must be 1-128 characters of letters, digits and . _ - :".into())
    }
}

/// Validate lines and ttl; duplicate products are refused rather than merged
/// so a caller bug is visible.
pub fn validate(lines: &[Line], ttl_secs: u32) -> Result<(), String> {
    if lines.is_empty() {
        return Err("a reservation needs at least one line".into());
    }
    if lines.len() > MAX_LINES {
        return Err(format!("a reservation has at most {MAX_LINES} lines"));
    }
    if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&ttl_secs) {
        return Err(format!("ttl must be from {MIN_TTL_SECS} to {MAX_TTL_SECS} seconds"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for l in lines {
        if l.quantity == 0 || l.quantity > MAX_QUANTITY {
            return Err(format!("quantity for {} must be from 1 to {MAX_QUANTITY}", l.product_id));
        }
        if !seen.insert(l.product_id.as_str()) {
            return Err(format!("product {} is listed twice", l.product_id));
        }
    }
    Ok(())
}

/// How many lapsed reservations one sweep transaction gives back; a stock
/// write sweeps batch after batch until none is left.
const SWEEP_BATCH: i64 = 200;

/// Give back the units of reservations that lapsed without being released,
/// before a stock write, in a transaction of their own: committed before
/// the write locks anything, so the write's own locks are the only ones it
/// takes, in the order the module docs give (a sweep inside the write locked
/// the swept holds' products first, and on Postgres two writes could
/// deadlock). Cheap when nothing lapsed: one indexed read, no transaction.
/// Every lapsed hold goes, in batches ([`SWEEP_BATCH`]): the write's stock
/// checks and the `reserved <= stock_on_hand` constraint see the column,
/// which counts a hold until it is given back (found in review: with more
/// than one batch due, an admin's valid stock change failed the constraint,
/// a 500, and a hold was refused units the listing showed as available).
pub fn sweep_due(db: &dyn Db, now: i64) -> Result<(), DbError> {
    loop {
        let due = db.query("SELECT 1 AS x FROM reservations WHERE holding = 1 AND expires_at <= ? LIMIT 1", &[now.into()])?;
        if due.is_empty() {
            return Ok(());
        }
        // Fewer than a batch: none left, or (Postgres) the rest are being
        // given back by another transaction right now.
        if transaction(db, |tx| sweep_lapsed(tx, now))? < SWEEP_BATCH as usize {
            return Ok(());
        }
    }
}

/// The sweep itself. Each reservation is claimed by the `UPDATE` that
/// clears its `holding` flag, so two concurrent sweeps never give the same
/// units back twice. On Postgres a sweep skips the holds another
/// transaction has locked (a concurrent sweep, or the hold's own release or
/// sale, which then gives its units back itself), so a sweep never waits
/// for a row lock before it locks products, which it does in id order.
/// Returns how many holds it gave back.
fn sweep_lapsed(tx: &dyn Db, now: i64) -> Result<usize, DbError> {
    let skip_locked = match tx.dialect() {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let claimed = tx.query(
        &format!(
            "UPDATE reservations SET holding = 0 WHERE holding = 1 AND expires_at <= ? AND order_id IN \
             (SELECT order_id FROM reservations WHERE holding = 1 AND expires_at <= ? ORDER BY expires_at LIMIT ?{skip_locked}) \
             RETURNING order_id"
        ),
        &[now.into(), now.into(), SWEEP_BATCH.into()],
    )?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let orders: Vec<Value> = claimed.iter().map(|r| r.text("order_id").map(Value::from)).collect::<Result<_, _>>()?;
    let marks = vec!["?"; orders.len()].join(", ");
    let held = tx.query(
        &format!(
            "SELECT product_id, SUM(quantity) AS qty FROM reservation_lines WHERE order_id IN ({marks}) \
             GROUP BY product_id ORDER BY product_id"
        ),
        &orders,
    )?;
    for r in held.iter() {
        tx.execute(
            "UPDATE products SET reserved = reserved - ? WHERE id = ?",
            &[r.int("qty")?.into(), r.text("product_id")?.into()],
        )?;
    }
    Ok(claimed.len())
}

/// Available units of active products (inactive and unknown ones are absent).
fn available(db: &dyn Db, product_ids: &[&str]) -> Result<BTreeMap<String, i64>, DbError> {
    let marks = vec!["?"; product_ids.len()].join(", ");
    let params: Vec<Value> = product_ids.iter().map(|p| Value::from(*p)).collect();
    let rows = db.query(
        &format!("SELECT id, stock_on_hand - reserved AS available FROM products WHERE active = 1 AND id IN ({marks})"),
        &params,
    )?;
    rows.iter().map(|r| Ok((r.text("id")?, r.int("available")?.max(0)))).collect()
}

/// Lock a reservation's row for the rest of the transaction and read it as
/// it is now (a portable `SELECT ... FOR UPDATE`: on Postgres the `UPDATE`
/// waits for a concurrent writer and then sees its result).
fn lock(tx: &dyn Db, order_id: &str) -> Result<Option<(String, i64, bool)>, DbError> {
    let rows = tx.query(
        "UPDATE reservations SET updated_at = updated_at WHERE order_id = ? RETURNING status, expires_at, holding",
        &[order_id.into()],
    )?;
    rows.first().map(|r| Ok((r.text("status")?, r.int("expires_at")?, r.bool("holding")?))).transpose()
}

fn lines_of(db: &dyn Db, order_id: &str) -> Result<Vec<ReservedLine>, DbError> {
    db.query(
        "SELECT product_id, quantity FROM reservation_lines WHERE order_id = ? ORDER BY product_id",
        &[order_id.into()],
    )?
    .iter()
    .map(|r| Ok(ReservedLine { product_id: r.text("product_id")?, quantity: r.int("quantity")? as u32 }))
    .collect()
}

/// Load a reservation.
pub fn get(db: &dyn Db, order_id: &str, now: i64) -> Result<Option<Reservation>, DbError> {
    let rows = db.query("SELECT status, expires_at FROM reservations WHERE order_id = ?", &[order_id.into()])?;
    let Some(head) = rows.first() else { return Ok(None) };
    let status = head.text("status")?;
    let expires_at = head.int("expires_at")?;
    let lines = lines_of(db, order_id)?;
    Ok(Some(Reservation {
        order_id: order_id.to_string(),
        live: status == "reserved" && expires_at > now,
        status,
        expires_at,
        lines,
    }))
}

fn same_lines(existing: &[ReservedLine], wanted: &[ReservedLine]) -> bool {
    let mut a = existing.to_vec();
    let mut b = wanted.to_vec();
    a.sort_by(|x, y| x.product_id.cmp(&y.product_id));
    b.sort_by(|x, y| x.product_id.cmp(&y.product_id));
    a == b
}

/// Reserve every line for `order_id`, or none.
///
/// Repeating the call with the same lines returns the existing reservation
/// unchanged; different lines, or a released order, are a conflict.
pub fn reserve(db: &dyn Db, order_id: &str, lines: &[Line], ttl_secs: u32, now: i64) -> Result<Reservation, ReserveError> {
    validate(lines, ttl_secs).map_err(ReserveError::Invalid)?;
    let mut wanted: Vec<ReservedLine> = lines
        .iter()
        .map(|l| ReservedLine { product_id: l.product_id.to_string(), quantity: l.quantity })
        .collect();
    // Products are always locked in id order (see the module docs).
    wanted.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    let expires_at = now + ttl_secs as i64;
    sweep_due(db, now)?;
    transaction(db, |tx| {
        let stamp = clock::now_rfc3339();
        let created = tx.query(
            "INSERT INTO reservations (order_id, status, expires_at, holding, created_at, updated_at) \
             VALUES (?, 'reserved', ?, 1, ?, ?) ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
            &[order_id.into(), expires_at.into(), stamp.as_str().into(), stamp.as_str().into()],
        )?;
        if created.is_empty() {
            let existing = get(tx, order_id, now)?.ok_or_else(|| DbError::Other("reservation vanished".into()))?;
            if existing.status == "released" {
                return Err(ReserveError::Conflict(format!("the reservation for order {order_id} was released")));
            }
            if !same_lines(&existing.lines, &wanted) {
                return Err(ReserveError::Conflict(format!("order {order_id} already holds a different reservation")));
            }
            return Ok(existing);
        }
        let mut short: Vec<&ReservedLine> = Vec::new();
        for l in &wanted {
            let held = tx.query(
                "UPDATE products SET reserved = reserved + ? \
                 WHERE id = ? AND active = 1 AND stock_on_hand - reserved >= ? RETURNING id",
                &[l.quantity.into(), l.product_id.as_str().into(), l.quantity.into()],
            )?;
            if held.is_empty() {
                short.push(l);
            }
        }
        if !short.is_empty() {
            // Returning the error rolls back the holds already taken.
            let ids: Vec<&str> = short.iter().map(|l| l.product_id.as_str()).collect();
            let free = available(tx, &ids)?;
            return Err(ReserveError::Insufficient(
                short
                    .iter()
                    .map(|l| Shortage {
                        product_id: l.product_id.clone(),
                        requested: l.quantity,
                        available: free.get(&l.product_id).copied().unwrap_or(0),
                    })
                    .collect(),
            ));
        }
        let rows = vec!["(?, ?, ?)"; wanted.len()].join(", ");
        let mut params: Vec<Value> = Vec::with_capacity(wanted.len() * 3);
        for l in &wanted {
            params.extend([order_id.into(), l.product_id.as_str().into(), l.quantity.into()]);
        }
        tx.execute(&format!("INSERT INTO reservation_lines (order_id, product_id, quantity) VALUES {rows}"), &params)?;
        Ok(Reservation { order_id: order_id.to_string(), status: "reserved".into(), expires_at, live: true, lines: wanted.clone() })
    })
}

/// Turn the reservation into a sale: the stock leaves `stock_on_hand`.
///
/// A reservation that lapsed is still committed if its stock is still free
/// (nobody else reserved it meanwhile); otherwise `Expired`, and nothing changes.
pub fn commit(db: &dyn Db, order_id: &str, now: i64) -> Result<Reservation, InventoryError> {
    sell(db, order_id, now, false)
}

/// Sell the units of a reservation whose hold ended — released, or lapsed —
/// after all: a payment arrived after its order expired, and checkout
/// honours it. Like the lapsed case of [`commit`], only what is free now is
/// sold, all lines or none (`Expired`, nothing changes). A live reservation
/// is committed as by [`commit`]; a committed one is left as it is.
pub fn recommit(db: &dyn Db, order_id: &str, now: i64) -> Result<Reservation, InventoryError> {
    sell(db, order_id, now, true)
}

fn sell(db: &dyn Db, order_id: &str, now: i64, revive_released: bool) -> Result<Reservation, InventoryError> {
    sweep_due(db, now)?;
    transaction(db, |tx| {
        let (status, expires_at, holding) = lock(tx, order_id)?.ok_or(InventoryError::UnknownOrder)?;
        let lines = lines_of(tx, order_id)?;
        let done = |status: &str| Reservation { order_id: order_id.to_string(), status: status.into(), expires_at, live: false, lines: lines.clone() };
        match status.as_str() {
            "committed" => return Ok(done("committed")),
            "released" if !revive_released => return Err(InventoryError::AlreadyReleased),
            _ => {}
        }
        // A released reservation holds nothing (`holding` was cleared).
        let stamp = clock::now_rfc3339();
        for l in &lines {
            if holding {
                // Its units are already held: they move from reserved to sold.
                // The CHECK constraints are the last line of defence.
                tx.execute(
                    "UPDATE products SET stock_on_hand = stock_on_hand - ?, reserved = reserved - ?, updated_at = ? WHERE id = ?",
                    &[l.quantity.into(), l.quantity.into(), stamp.as_str().into(), l.product_id.as_str().into()],
                )?;
            } else {
                // Lapsed and swept: sell only what is still free.
                let sold = tx.query(
                    "UPDATE products SET stock_on_hand = stock_on_hand - ?, updated_at = ? \
                     WHERE id = ? AND stock_on_hand - reserved >= ? RETURNING id",
                    &[l.quantity.into(), stamp.as_str().into(), l.product_id.as_str().into(), l.quantity.into()],
                )?;
                if sold.is_empty() {
                    return Err(InventoryError::Expired);
                }
            }
        }
        set_status(tx, order_id, "committed")?;
        Ok(done("committed"))
    })
}

/// Keep a live reservation until at least `now + ttl_secs` (at most
/// [`MAX_TTL_SECS`] from now), never shortening it: checkout extends an
/// order's hold so that a payment page opened for it cannot outlive it.
/// Lapsed (and swept), committed or released reservations are not revived.
pub fn extend(db: &dyn Db, order_id: &str, ttl_secs: u32, now: i64) -> Result<Reservation, InventoryError> {
    let until = now + i64::from(ttl_secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS));
    sweep_due(db, now)?;
    transaction(db, |tx| {
        let (status, expires_at, holding) = lock(tx, order_id)?.ok_or(InventoryError::UnknownOrder)?;
        match status.as_str() {
            "committed" => return Err(InventoryError::AlreadyCommitted),
            "released" => return Err(InventoryError::AlreadyReleased),
            _ if !holding || expires_at <= now => return Err(InventoryError::Expired),
            _ => {}
        }
        let expires_at = expires_at.max(until);
        tx.execute(
            "UPDATE reservations SET expires_at = ?, updated_at = ? WHERE order_id = ?",
            &[expires_at.into(), clock::now_rfc3339().into(), order_id.into()],
        )?;
        let lines = lines_of(tx, order_id)?;
        Ok(Reservation { order_id: order_id.to_string(), status: "reserved".into(), expires_at, live: true, lines })
    })
}

/// Put the units of a committed reservation back on hand: the sale did not
/// happen after all. Checkout calls it only for an order that ended unpaid
/// while its stock had been committed (a payment's commit whose order
/// transaction then failed), so those units are not lost. Idempotent:
/// a reservation already released is left alone.
pub fn return_sold(db: &dyn Db, order_id: &str, now: i64) -> Result<Reservation, InventoryError> {
    sweep_due(db, now)?;
    transaction(db, |tx| {
        let (status, expires_at, _) = lock(tx, order_id)?.ok_or(InventoryError::UnknownOrder)?;
        let lines = lines_of(tx, order_id)?;
        let done = Reservation { order_id: order_id.to_string(), status: "released".into(), expires_at, live: false, lines: lines.clone() };
        match status.as_str() {
            "released" => return Ok(done),
            "committed" => {}
            _ => return Err(InventoryError::UnknownOrder),
        }
        let stamp = clock::now_rfc3339();
        for l in &lines {
            tx.execute(
                "UPDATE products SET stock_on_hand = stock_on_hand + ?, updated_at = ? WHERE id = ?",
                &[l.quantity.into(), stamp.as_str().into(), l.product_id.as_str().into()],
            )?;
        }
        set_status(tx, order_id, "released")?;
        Ok(done)
    })
}

/// Put units of a sale back on hand: a paid order was cancelled or refunded
/// and an admin chose to restock. `lines` names products and quantities;
/// empty means every unit still sold. Only a committed reservation's units,
/// never more of a line than it sold less what went back already
/// (`reservation_lines.returned`), all lines or none. Once per
/// `operation_id`: repeating it returns what that operation put back and
/// changes nothing. Returns the lines put back (quantities > 0).
pub fn restock(db: &dyn Db, order_id: &str, operation_id: &str, lines: &[(String, u32)], now: i64) -> Result<Vec<ReservedLine>, ReserveError> {
    if operation_id.is_empty() || operation_id.len() > 255 {
        return Err(ReserveError::Invalid("an operation id is 1-255 characters".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    if lines.iter().any(|(p, q)| *q == 0 || !seen.insert(p.as_str())) {
        return Err(ReserveError::Invalid("each product at most once, with a quantity of at least 1".into()));
    }
    sweep_due(db, now)?;
    transaction(db, |tx| {
        let (status, _, _) = lock(tx, order_id)?.ok_or_else(|| ReserveError::Conflict(format!("order {order_id} has no reservation")))?;
        let done = tx.query(
            "SELECT lines FROM restocks WHERE order_id = ? AND operation_id = ?",
            &[order_id.into(), operation_id.into()],
        )?;
        if let Some(row) = done.first() {
            let recorded: Vec<(String, u32)> = serde_json::from_str::<Vec<serde_json::Value>>(&row.text("lines")?)
                .map_err(|e| DbError::Other(e.to_string()))?
                .iter()
                .map(|l| (l["product_id"].as_str().unwrap_or_default().to_string(), l["quantity"].as_u64().unwrap_or(0) as u32))
                .collect();
            return Ok(recorded.into_iter().map(|(product_id, quantity)| ReservedLine { product_id, quantity }).collect());
        }
        if status != "committed" {
            return Err(ReserveError::Conflict(format!("order {order_id}'s units are not sold ({status}): nothing to restock")));
        }
        let sold: BTreeMap<String, (i64, i64)> = tx
            .query("SELECT product_id, quantity, returned FROM reservation_lines WHERE order_id = ? ORDER BY product_id", &[order_id.into()])?
            .iter()
            .map(|r| Ok((r.text("product_id")?, (r.int("quantity")?, r.int("returned")?))))
            .collect::<Result<_, DbError>>()?;
        let mut wanted: Vec<(String, i64)> = if lines.is_empty() {
            sold.iter().map(|(p, (q, back))| (p.clone(), q - back)).filter(|(_, n)| *n > 0).collect()
        } else {
            lines.iter().map(|(p, q)| (p.clone(), i64::from(*q))).collect()
        };
        // Products in id order, as every stock write locks them.
        wanted.sort();
        for (product, n) in &wanted {
            let left = sold.get(product).map(|(q, back)| q - back);
            match left {
                None => return Err(ReserveError::Invalid(format!("product {product} is not part of order {order_id}"))),
                Some(left) if *n > left => {
                    return Err(ReserveError::Invalid(format!("order {order_id} has {left} unit(s) of {product} left to restock, not {n}")))
                }
                _ => {}
            }
        }
        let stamp = clock::now_rfc3339();
        for (product, n) in &wanted {
            tx.execute(
                "UPDATE reservation_lines SET returned = returned + ? WHERE order_id = ? AND product_id = ?",
                &[(*n).into(), order_id.into(), product.as_str().into()],
            )?;
            tx.execute(
                "UPDATE products SET stock_on_hand = stock_on_hand + ?, updated_at = ? WHERE id = ?",
                &[(*n).into(), stamp.as_str().into(), product.as_str().into()],
            )?;
        }
        let put_back: Vec<ReservedLine> = wanted.iter().map(|(p, n)| ReservedLine { product_id: p.clone(), quantity: *n as u32 }).collect();
        let json = serde_json::to_string(&put_back).map_err(|e| DbError::Other(e.to_string()))?;
        tx.execute(
            "INSERT INTO restocks (order_id, operation_id, lines, created_at) VALUES (?, ?, ?, ?)",
            &[order_id.into(), operation_id.into(), json.into(), stamp.as_str().into()],
        )?;
        Ok(put_back)
    })
}

/// Give the stock back (cancelled, failed or expired order).
pub fn release(db: &dyn Db, order_id: &str, now: i64) -> Result<Reservation, InventoryError> {
    sweep_due(db, now)?;
    transaction(db, |tx| {
        let (status, expires_at, holding) = lock(tx, order_id)?.ok_or(InventoryError::UnknownOrder)?;
        let lines = lines_of(tx, order_id)?;
        let done = Reservation { order_id: order_id.to_string(), status: "released".into(), expires_at, live: false, lines: lines.clone() };
        match status.as_str() {
            "released" => return Ok(done),
            "committed" => return Err(InventoryError::AlreadyCommitted),
            _ => {}
        }
        if holding {
            for l in &lines {
                tx.execute(
                    "UPDATE products SET reserved = reserved - ? WHERE id = ?",
                    &[l.quantity.into(), l.product_id.as_str().into()],
                )?;
            }
        }
        set_status(tx, order_id, "released")?;
        Ok(done)
    })
}

fn set_status(db: &dyn Db, order_id: &str, status: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE reservations SET status = ?, holding = 0, updated_at = ? WHERE order_id = ?",
        &[status.into(), clock::now_rfc3339().into(), order_id.into()],
    )
}

/// Has this product ever been part of an order (reserved at some point)?
pub fn ever_ordered(db: &dyn Db, product_id: &str) -> Result<bool, DbError> {
    Ok(!db
        .query("SELECT 1 AS x FROM reservation_lines WHERE product_id = ? LIMIT 1", &[product_id.into()])?
        .is_empty())
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;
    use storage::native::MemDb;

    const P1: &str = "a0000000-0000-4000-8000-000000000001";
    const P2: &str = "a0000000-0000-4000-8000-000000000003";

    fn db_at(path: Option<&std::path::Path>) -> MemDb {
        let db = match path {
            Some(p) => MemDb::file(p),
            None => MemDb::new(),
        };
        storage::migrations::migrate(&db, schema::MIGRATIONS).unwrap();
        storage::migrations::apply_data_once(&db, "demo", schema::DEMO_CATALOG).unwrap();
        db
    }

    /// Units held by live reservations for one product, as reads see them.
    fn reserved_now(db: &dyn Db, product_id: &str, now: i64) -> Result<i64, DbError> {
        let id = ProductId::parse(product_id).map_err(|e| DbError::Other(e.to_string()))?;
        Ok(crate::repository::get_product(db, &id, true, now)?.map(|p| p.reserved).unwrap_or(0))
    }

    fn set_stock(db: &MemDb, id: &str, n: i64) {
        db.execute("UPDATE products SET stock_on_hand = ? WHERE id = ?", &[n.into(), id.into()]).unwrap();
    }

    fn line(id: &str, q: u32) -> Line {
        Line { product_id: ProductId::parse(id).unwrap(), quantity: q }
    }

    fn stock(db: &MemDb, id: &str) -> i64 {
        db.query("SELECT stock_on_hand FROM products WHERE id = ?", &[id.into()]).unwrap().first().unwrap().int("stock_on_hand").unwrap()
    }

    #[test]
    fn all_or_nothing_naming_the_short_line() {
        let db = db_at(None);
        set_stock(&db, P1, 5);
        set_stock(&db, P2, 1);
        let e = reserve(&db, "o1", &[line(P1, 2), line(P2, 3)], 600, 1000).unwrap_err();
        assert_eq!(e, ReserveError::Insufficient(vec![Shortage { product_id: P2.into(), requested: 3, available: 1 }]));
        assert_eq!(get(&db, "o1", 1000).unwrap(), None, "nothing reserved");
        assert_eq!(reserved_now(&db, P1, 1000).unwrap(), 0);
    }

    #[test]
    fn a_live_hold_is_extended_never_shortened_and_never_revived() {
        let db = db_at(None);
        set_stock(&db, P1, 5);
        reserve(&db, "o1", &[line(P1, 2)], 600, 1000).unwrap();
        assert_eq!(extend(&db, "o1", 3600, 1100).unwrap().expires_at, 4700);
        assert_eq!(extend(&db, "o1", 60, 1200).unwrap().expires_at, 4700, "never shortened");
        assert_eq!(extend(&db, "o1", 999_999, 1200).unwrap().expires_at, 1200 + i64::from(MAX_TTL_SECS), "capped");
        assert_eq!(reserved_now(&db, P1, 4800).unwrap(), 2, "still held past the first expiry");
        reserve(&db, "o2", &[line(P1, 1)], 60, 1000).unwrap();
        assert_eq!(extend(&db, "o2", 600, 1061).unwrap_err(), InventoryError::Expired, "a lapsed hold is not revived");
        commit(&db, "o1", 1300).unwrap();
        assert_eq!(extend(&db, "o1", 600, 1301).unwrap_err(), InventoryError::AlreadyCommitted);
        assert_eq!(extend(&db, "nope", 600, 1).unwrap_err(), InventoryError::UnknownOrder);
    }

    #[test]
    fn units_of_a_sale_that_did_not_happen_go_back_once() {
        let db = db_at(None);
        set_stock(&db, P1, 5);
        reserve(&db, "o1", &[line(P1, 2)], 600, 1000).unwrap();
        commit(&db, "o1", 1001).unwrap();
        assert_eq!(stock(&db, P1), 3);
        return_sold(&db, "o1", 1002).unwrap();
        return_sold(&db, "o1", 1003).unwrap();
        assert_eq!(stock(&db, P1), 5, "back once");
        assert_eq!(commit(&db, "o1", 1004).unwrap_err(), InventoryError::AlreadyReleased);
        reserve(&db, "o2", &[line(P1, 1)], 600, 1000).unwrap();
        assert_eq!(return_sold(&db, "o2", 1001).unwrap_err(), InventoryError::UnknownOrder, "only committed holds");
    }

    #[test]
    fn a_released_hold_is_sold_after_all_only_when_every_unit_is_free() {
        let db = db_at(None);
        set_stock(&db, P1, 3);
        set_stock(&db, P2, 1);
        reserve(&db, "o1", &[line(P1, 2), line(P2, 1)], 600, 1000).unwrap();
        release(&db, "o1", 1001).unwrap();
        reserve(&db, "o2", &[line(P2, 1)], 600, 1002).unwrap();
        assert_eq!(recommit(&db, "o1", 1003).unwrap_err(), InventoryError::Expired, "P2's last unit is held by o2");
        assert_eq!((stock(&db, P1), stock(&db, P2)), (3, 1), "all or nothing");
        release(&db, "o2", 1004).unwrap();
        assert_eq!(recommit(&db, "o1", 1005).unwrap().status, "committed");
        assert_eq!((stock(&db, P1), stock(&db, P2)), (1, 0));
        assert_eq!(recommit(&db, "o1", 1006).unwrap().status, "committed", "idempotent");
        assert_eq!((stock(&db, P1), stock(&db, P2)), (1, 0), "sold once");
        assert_eq!(reserved_now(&db, P1, 1006).unwrap(), 0);
        assert_eq!(recommit(&db, "nope", 1).unwrap_err(), InventoryError::UnknownOrder);
    }

    #[test]
    fn restocking_puts_sold_units_back_once_and_never_more_than_sold() {
        let db = db_at(None);
        set_stock(&db, P1, 5);
        set_stock(&db, P2, 5);
        reserve(&db, "o1", &[line(P1, 2), line(P2, 1)], 600, 1000).unwrap();
        assert!(matches!(restock(&db, "o1", "r1", &[], 1001), Err(ReserveError::Conflict(_))), "not sold yet");
        commit(&db, "o1", 1001).unwrap();
        assert_eq!((stock(&db, P1), stock(&db, P2)), (3, 4));
        let back = restock(&db, "o1", "refund-1", &[(P1.to_string(), 1)], 1002).unwrap();
        assert_eq!(back, vec![ReservedLine { product_id: P1.into(), quantity: 1 }]);
        assert_eq!(restock(&db, "o1", "refund-1", &[(P1.to_string(), 1)], 1003).unwrap(), back, "once per operation");
        assert_eq!(stock(&db, P1), 4);
        assert!(matches!(restock(&db, "o1", "refund-2", &[(P1.to_string(), 2)], 1004), Err(ReserveError::Invalid(_))), "only 1 left");
        assert!(matches!(restock(&db, "o1", "refund-2", &[(P2.to_string(), 0)], 1004), Err(ReserveError::Invalid(_))));
        let rest = restock(&db, "o1", "cancel", &[], 1005).unwrap();
        assert_eq!(rest, vec![ReservedLine { product_id: P1.into(), quantity: 1 }, ReservedLine { product_id: P2.into(), quantity: 1 }]);
        assert_eq!((stock(&db, P1), stock(&db, P2)), (5, 5), "all back, exactly");
        assert_eq!(restock(&db, "o1", "again", &[], 1006).unwrap(), vec![], "nothing left");
    }

    #[test]
    fn reserve_commit_release_are_idempotent() {
        let db = db_at(None);
        set_stock(&db, P1, 5);
        let r = reserve(&db, "o1", &[line(P1, 2)], 600, 1000).unwrap();
        assert!(r.live);
        assert_eq!(reserve(&db, "o1", &[line(P1, 2)], 600, 1001).unwrap(), r, "same call, same answer");
        assert!(matches!(reserve(&db, "o1", &[line(P1, 3)], 600, 1001), Err(ReserveError::Conflict(_))));
        assert_eq!(reserved_now(&db, P1, 1001).unwrap(), 2);
        commit(&db, "o1", 1002).unwrap();
        commit(&db, "o1", 1003).unwrap();
        assert_eq!(stock(&db, P1), 3, "sold once");
        assert_eq!(reserved_now(&db, P1, 1003).unwrap(), 0);
        assert_eq!(release(&db, "o1", 1004).unwrap_err(), InventoryError::AlreadyCommitted);

        reserve(&db, "o2", &[line(P1, 3)], 600, 1000).unwrap();
        release(&db, "o2", 1001).unwrap();
        release(&db, "o2", 1002).unwrap();
        assert_eq!(stock(&db, P1), 3, "released stock is back");
        assert_eq!(commit(&db, "o2", 1003).unwrap_err(), InventoryError::AlreadyReleased);
        assert!(matches!(reserve(&db, "o2", &[line(P1, 3)], 600, 1004), Err(ReserveError::Conflict(_))));
        assert_eq!(commit(&db, "nope", 1).unwrap_err(), InventoryError::UnknownOrder);
    }

    #[test]
    fn expired_reservations_stop_counting() {
        let db = db_at(None);
        set_stock(&db, P1, 2);
        reserve(&db, "old", &[line(P1, 2)], 60, 1000).unwrap();
        assert!(matches!(reserve(&db, "new", &[line(P1, 1)], 60, 1059), Err(ReserveError::Insufficient(_))));
        reserve(&db, "new", &[line(P1, 2)], 60, 1060).unwrap();
        // The lapsed one can no longer be committed: its stock went to "new".
        assert_eq!(commit(&db, "old", 1061).unwrap_err(), InventoryError::Expired);
        // A lapsed reservation whose stock is still free can be committed.
        release(&db, "new", 1062).unwrap();
        commit(&db, "old", 1063).unwrap();
        assert_eq!(stock(&db, P1), 0);
    }

    /// More lapsed holds than one sweep batch: a hold right after them gets
    /// every unit reads show as available.
    #[test]
    fn every_lapsed_hold_is_given_back_before_a_hold() {
        let db = db_at(None);
        set_stock(&db, P1, 300);
        for i in 0..250 {
            reserve(&db, &format!("o{i}"), &[line(P1, 1)], 60, 1000).unwrap();
        }
        assert_eq!(reserved_now(&db, P1, 1060).unwrap(), 0, "all lapsed");
        reserve(&db, "big", &[line(P1, 300)], 60, 1060).unwrap();
        assert_eq!(reserved_now(&db, P1, 1060).unwrap(), 300);
    }

    /// The same before an admin's stock change: below what is held is a
    /// 409, never the constraint's error (a 500).
    #[test]
    fn every_lapsed_hold_is_given_back_before_a_stock_change() {
        let db = db_at(None);
        set_stock(&db, P1, 300);
        for i in 0..250 {
            reserve(&db, &format!("o{i}"), &[line(P1, 1)], 60, 1000).unwrap();
        }
        reserve(&db, "live", &[line(P1, 5)], 600, 1000).unwrap();
        let id = ProductId::parse(P1).unwrap();
        assert_eq!(crate::admin::set_stock(&db, &id, 10, None, 1060).unwrap().reserved, 5);
        assert!(matches!(crate::admin::set_stock(&db, &id, 4, None, 1060), Err(crate::admin::AdminError::Conflict("below_reserved", _))));
        // Based on a count that is no longer true: refused, nothing written.
        assert!(matches!(crate::admin::set_stock(&db, &id, 12, Some(7), 1060), Err(crate::admin::AdminError::Conflict("stock_changed", _))));
        assert_eq!(crate::admin::set_stock(&db, &id, 12, Some(10), 1060).unwrap().on_hand, 12);
    }

    #[test]
    fn inactive_and_unknown_products_are_short() {
        let db = db_at(None);
        let inactive = "a0000000-0000-4000-8000-000000000020";
        let unknown = "00000000-0000-4000-8000-000000000000";
        let e = reserve(&db, "o", &[line(inactive, 1), line(unknown, 1)], 600, 1).unwrap_err();
        let ReserveError::Insufficient(s) = e else { panic!("{e:?}") };
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|x| x.available == 0));
    }

    #[test]
    fn bad_requests() {
        let db = db_at(None);
        for (lines, ttl) in [(vec![], 600), (vec![line(P1, 0)], 600), (vec![line(P1, 1), line(P1, 1)], 600), (vec![line(P1, 1)], 0), (vec![line(P1, 1)], 90_000)] {
            assert!(matches!(reserve(&db, "o", &lines, ttl, 1), Err(ReserveError::Invalid(_))));
        }
        assert!(parse_order_id("ord_123:x").is_ok());
        assert!(parse_order_id("").is_err() && parse_order_id("a b").is_err() && parse_order_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn concurrent_reservations_never_oversell() {
        let dir = std::env::temp_dir().join(format!("inv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("catalog.db");
        let _ = std::fs::remove_file(&path);
        let db = db_at(Some(&path));
        set_stock(&db, P1, 3);
        drop(db);
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let db = MemDb::file(&path);
                    db.0.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                    reserve(&db, &format!("o{i}"), &[line(P1, 1)], 600, 1000).is_ok()
                })
            })
            .collect();
        let winners = handles.into_iter().filter(|_| true).map(|h| h.join().unwrap()).filter(|ok| *ok).count();
        assert_eq!(winners, 3);
        let db = MemDb::file(&path);
        assert_eq!(reserved_now(&db, P1, 1000).unwrap(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
