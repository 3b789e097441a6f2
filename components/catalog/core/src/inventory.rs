//! Stock reservations: the rules that make overselling impossible.
//!
//! Available stock is stock on hand minus the quantities of *live*
//! reservations (status `reserved`, not yet expired). Every operation runs in
//! one write transaction (`BEGIN IMMEDIATE`), so the availability check and
//! the write that depends on it cannot interleave with another reservation:
//! under any concurrency, stock sold plus stock reserved never exceeds stock
//! on hand, and stock never goes negative.
//!
//! All operations are idempotent per order id.

use crate::domain::ProductId;
use serde::Serialize;
use std::collections::BTreeMap;
use storage::{transaction, Db, DbError, Value};

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

/// Quantities held by live reservations, per product, excluding one order.
fn live_reserved(db: &dyn Db, product_ids: &[&str], now: i64, except_order: &str) -> Result<BTreeMap<String, i64>, DbError> {
    let marks = vec!["?"; product_ids.len()].join(", ");
    let mut params: Vec<Value> = vec![now.into(), except_order.into()];
    params.extend(product_ids.iter().map(|p| Value::from(*p)));
    let rows = db.query(
        &format!(
            "SELECT l.product_id, SUM(l.quantity) AS qty FROM reservation_lines l \
             JOIN reservations r ON r.order_id = l.order_id \
             WHERE r.status = 'reserved' AND r.expires_at > ? AND r.order_id <> ? AND l.product_id IN ({marks}) \
             GROUP BY l.product_id"
        ),
        &params,
    )?;
    rows.iter().map(|r| Ok((r.text("product_id")?, r.int("qty")?))).collect()
}

/// Stock on hand of active products (inactive and unknown ones are absent).
fn on_hand(db: &dyn Db, product_ids: &[&str]) -> Result<BTreeMap<String, i64>, DbError> {
    let marks = vec!["?"; product_ids.len()].join(", ");
    let params: Vec<Value> = product_ids.iter().map(|p| Value::from(*p)).collect();
    let rows = db.query(
        &format!("SELECT id, stock_on_hand FROM products WHERE active = 1 AND id IN ({marks})"),
        &params,
    )?;
    rows.iter().map(|r| Ok((r.text("id")?, r.int("stock_on_hand")?))).collect()
}

/// The lines each product is short by, given what others hold.
fn shortages(db: &dyn Db, lines: &[ReservedLine], now: i64, order_id: &str) -> Result<Vec<Shortage>, DbError> {
    let ids: Vec<&str> = lines.iter().map(|l| l.product_id.as_str()).collect();
    let stock = on_hand(db, &ids)?;
    let held = live_reserved(db, &ids, now, order_id)?;
    Ok(lines
        .iter()
        .filter_map(|l| {
            let available = match stock.get(&l.product_id) {
                Some(s) => (s - held.get(&l.product_id).copied().unwrap_or(0)).max(0),
                None => 0,
            };
            (available < l.quantity as i64).then(|| Shortage {
                product_id: l.product_id.clone(),
                requested: l.quantity,
                available,
            })
        })
        .collect())
}

/// Load a reservation.
pub fn get(db: &dyn Db, order_id: &str, now: i64) -> Result<Option<Reservation>, DbError> {
    let rows = db.query("SELECT status, expires_at FROM reservations WHERE order_id = ?", &[order_id.into()])?;
    let Some(head) = rows.first() else { return Ok(None) };
    let status = head.text("status")?;
    let expires_at = head.int("expires_at")?;
    let lines = db
        .query(
            "SELECT product_id, quantity FROM reservation_lines WHERE order_id = ? ORDER BY product_id",
            &[order_id.into()],
        )?
        .iter()
        .map(|r| Ok(ReservedLine { product_id: r.text("product_id")?, quantity: r.int("quantity")? as u32 }))
        .collect::<Result<Vec<_>, DbError>>()?;
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
    let wanted: Vec<ReservedLine> = lines
        .iter()
        .map(|l| ReservedLine { product_id: l.product_id.to_string(), quantity: l.quantity })
        .collect();
    transaction(db, |tx| {
        if let Some(existing) = get(tx, order_id, now)? {
            if existing.status == "released" {
                return Err(ReserveError::Conflict(format!("the reservation for order {order_id} was released")));
            }
            if !same_lines(&existing.lines, &wanted) {
                return Err(ReserveError::Conflict(format!("order {order_id} already holds a different reservation")));
            }
            return Ok(existing);
        }
        let short = shortages(tx, &wanted, now, order_id)?;
        if !short.is_empty() {
            return Err(ReserveError::Insufficient(short));
        }
        let stamp = clock::now_rfc3339();
        tx.execute(
            "INSERT INTO reservations (order_id, status, expires_at, created_at, updated_at) VALUES (?, 'reserved', ?, ?, ?)",
            &[order_id.into(), (now + ttl_secs as i64).into(), stamp.as_str().into(), stamp.as_str().into()],
        )?;
        for l in &wanted {
            tx.execute(
                "INSERT INTO reservation_lines (order_id, product_id, quantity) VALUES (?, ?, ?)",
                &[order_id.into(), l.product_id.as_str().into(), l.quantity.into()],
            )?;
        }
        Ok(get(tx, order_id, now)?.ok_or_else(|| DbError::Other("reservation vanished".into()))?)
    })
}

/// Turn the reservation into a sale: the stock leaves `stock_on_hand`.
///
/// A reservation that lapsed is still committed if its stock is still free
/// (nobody else reserved it meanwhile); otherwise `Expired`, and nothing changes.
pub fn commit(db: &dyn Db, order_id: &str, now: i64) -> Result<Reservation, InventoryError> {
    transaction(db, |tx| {
        let r = get(tx, order_id, now)?.ok_or(InventoryError::UnknownOrder)?;
        match r.status.as_str() {
            "committed" => return Ok(r),
            "released" => return Err(InventoryError::AlreadyReleased),
            _ => {}
        }
        if !r.live && !shortages(tx, &r.lines, now, order_id)?.is_empty() {
            return Err(InventoryError::Expired);
        }
        for l in &r.lines {
            // The CHECK (stock_on_hand >= 0) constraint is the last line of defence.
            tx.execute(
                "UPDATE products SET stock_on_hand = stock_on_hand - ?, updated_at = ? WHERE id = ?",
                &[l.quantity.into(), clock::now_rfc3339().into(), l.product_id.as_str().into()],
            )?;
        }
        set_status(tx, order_id, "committed")?;
        Ok(get(tx, order_id, now)?.ok_or(InventoryError::UnknownOrder)?)
    })
}

/// Give the stock back (cancelled, failed or expired order).
pub fn release(db: &dyn Db, order_id: &str, now: i64) -> Result<Reservation, InventoryError> {
    transaction(db, |tx| {
        let r = get(tx, order_id, now)?.ok_or(InventoryError::UnknownOrder)?;
        match r.status.as_str() {
            "released" => return Ok(r),
            "committed" => return Err(InventoryError::AlreadyCommitted),
            _ => {}
        }
        set_status(tx, order_id, "released")?;
        Ok(get(tx, order_id, now)?.ok_or(InventoryError::UnknownOrder)?)
    })
}

fn set_status(db: &dyn Db, order_id: &str, status: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE reservations SET status = ?, updated_at = ? WHERE order_id = ?",
        &[status.into(), clock::now_rfc3339().into(), order_id.into()],
    )
}

/// Has this product ever been part of an order (reserved at some point)?
pub fn ever_ordered(db: &dyn Db, product_id: &str) -> Result<bool, DbError> {
    Ok(!db
        .query("SELECT 1 AS x FROM reservation_lines WHERE product_id = ? LIMIT 1", &[product_id.into()])?
        .is_empty())
}

/// Units held by live reservations for one product.
pub fn reserved_now(db: &dyn Db, product_id: &str, now: i64) -> Result<i64, DbError> {
    Ok(live_reserved(db, &[product_id], now, "")?.get(product_id).copied().unwrap_or(0))
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
