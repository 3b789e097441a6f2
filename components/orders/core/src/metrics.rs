//! Checkout's figures for `GET /metrics` (through the `shop:orders/metrics`
//! contract), and the two operational counters checkout keeps for them:
//! sweep runs and webhooks refused for their signature.
//!
//! Cost: orders by status and paid revenue are read from the covering index
//! `orders_status_totals (status, currency, total_minor, refunded_minor)`
//! (one pass over the index, no table rows); flagged orders from the partial
//! index `orders_flagged`, which holds only them; the counters are primary-key
//! look-ups; owed stock changes and restocks from their own small tables
//! (a row lives only until the catalog has answered). Seven statements in
//! all.

use crate::domain::Status;
use storage::counters::{self, Counter};
use storage::{Db, DbError};

/// The `ops_counters` row of `POST /api/orders/sweep`.
pub const SWEEP: &str = "sweep";
/// The `ops_counters` row of webhook requests refused for their signature.
pub const BAD_WEBHOOK_SIGNATURE: &str = "stripe_webhook_bad_signature";

/// What checkout reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFigures {
    /// Every status, in [`Status::ALL`] order, with its number of orders
    /// (0 included, so a series never vanishes).
    pub by_status: Vec<(&'static str, i64)>,
    /// Per currency (alphabetical): the totals of the orders whose money was
    /// taken ([`Status::is_paid`]), less what was refunded of them, in minor units.
    pub paid_revenue: Vec<(String, i64)>,
    /// Orders carrying at least one flag for an admin.
    pub flagged: i64,
    pub sweep: Counter,
    pub webhook_signature_failures: i64,
    /// Stock changes owed to the catalog (`owed_stock`): how many, and
    /// when the oldest was owed (Unix seconds; 0 when none is).
    pub owed_stock: Owed,
    /// Restocks made or to be made in the catalog and not yet noted on
    /// their order (`owed_restocks`).
    pub owed_restocks: Owed,
}

/// Work owed to the catalog and not finished yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owed {
    pub count: i64,
    pub oldest_at: i64,
}

/// How many rows `table` holds and its oldest `created_at`.
fn owed(db: &dyn Db, table: &str) -> Result<Owed, DbError> {
    let rows = db.query(&format!("SELECT COUNT(*) AS n, COALESCE(MIN(created_at), 0) AS oldest FROM {table}"), &[])?;
    let Some(r) = rows.first() else { return Ok(Owed::default()) };
    Ok(Owed { count: r.int("n")?, oldest_at: r.int("oldest")? })
}

/// Read the figures.
pub fn order_figures(db: &dyn Db) -> Result<OrderFigures, DbError> {
    let counts = db.query("SELECT status, COUNT(*) AS n FROM orders GROUP BY status", &[])?;
    let mut by_status: Vec<(&'static str, i64)> = Status::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for row in counts.iter() {
        let status = row.text("status")?;
        if let Some(slot) = by_status.iter_mut().find(|(s, _)| *s == status) {
            slot.1 = row.int("n")?;
        }
    }
    let paid: Vec<&str> = Status::ALL.iter().filter(|s| s.is_paid()).map(|s| s.as_str()).collect();
    let placeholders = vec!["?"; paid.len()].join(", ");
    let revenue = db.query(
        &format!(
            "SELECT currency, CAST(SUM(total_minor - refunded_minor) AS BIGINT) AS amount FROM orders \
             WHERE status IN ({placeholders}) GROUP BY currency ORDER BY currency"
        ),
        &paid.iter().map(|s| (*s).into()).collect::<Vec<storage::Value>>(),
    )?;
    let paid_revenue = revenue.iter().map(|r| Ok((r.text("currency")?, r.int("amount")?))).collect::<Result<_, DbError>>()?;
    let flagged = db.query("SELECT COUNT(*) AS n FROM orders WHERE flags <> '[]'", &[])?.first().map(|r| r.int("n")).transpose()?.unwrap_or(0);
    Ok(OrderFigures {
        by_status,
        paid_revenue,
        flagged,
        sweep: counters::read(db, SWEEP)?,
        webhook_signature_failures: counters::read(db, BAD_WEBHOOK_SIGNATURE)?.value,
        owed_stock: owed(db, "owed_stock")?,
        owed_restocks: owed(db, "owed_restocks")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    fn order(db: &MemDb, id: &str, status: &str, currency: &str, total: i64, refunded: i64, flags: &str) {
        db.execute(
            "INSERT INTO orders (id, user_id, status, currency, subtotal_minor, total_minor, refunded_minor, flags, expires_at, created_at, updated_at) \
             VALUES (?, 'u', ?, ?, ?, ?, ?, ?, 0, 't', 't')",
            &[id.into(), status.into(), currency.into(), total.into(), total.into(), refunded.into(), flags.into()],
        )
        .unwrap();
    }

    #[test]
    fn counts_statuses_revenue_flags_and_counters() {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        order(&db, "o1", "paid", "USD", 1000, 0, "[]");
        order(&db, "o2", "shipped", "USD", 500, 200, "[]");
        order(&db, "o3", "pending_payment", "USD", 9999, 0, "[]");
        order(&db, "o4", "delivered", "JPY", 4800, 0, "[\"amount_mismatch\"]");
        order(&db, "o5", "refunded", "USD", 700, 700, "[]");
        order(&db, "o6", "cancelled", "EUR", 300, 0, "[\"paid_after_cancelled\"]");
        counters::bump(&db, SWEEP, 42).unwrap();
        counters::bump(&db, BAD_WEBHOOK_SIGNATURE, 43).unwrap();
        counters::bump(&db, BAD_WEBHOOK_SIGNATURE, 44).unwrap();

        let f = order_figures(&db).unwrap();
        assert_eq!(f.by_status.len(), Status::ALL.len());
        let count = |s: &str| f.by_status.iter().find(|(k, _)| *k == s).unwrap().1;
        assert_eq!((count("paid"), count("shipped"), count("pending_payment"), count("expired")), (1, 1, 1, 0));
        assert_eq!(f.paid_revenue, vec![("JPY".to_string(), 4800), ("USD".to_string(), 1300)]);
        assert_eq!(f.flagged, 2);
        assert_eq!(f.sweep, Counter { value: 1, updated_at: 42 });
        assert_eq!(f.webhook_signature_failures, 2);
        assert_eq!((f.owed_stock, f.owed_restocks), (Owed::default(), Owed::default()), "nothing owed");
    }

    #[test]
    fn counts_owed_stock_changes_and_restocks_with_the_oldest() {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        for (order, action, at) in [("o1", "sell", 500), ("o2", "release", 300), ("o3", "sell", 900)] {
            db.execute("INSERT INTO owed_stock (order_id, action, created_at) VALUES (?, ?, ?)", &[order.into(), action.into(), at.into()]).unwrap();
        }
        db.execute(
            "INSERT INTO owed_restocks (order_id, operation, lines, actor, created_at) VALUES ('o4', 'cancel', '[]', 'admin:a', 700)",
            &[],
        )
        .unwrap();
        let f = order_figures(&db).unwrap();
        assert_eq!(f.owed_stock, Owed { count: 3, oldest_at: 300 });
        assert_eq!(f.owed_restocks, Owed { count: 1, oldest_at: 700 });
    }
}
