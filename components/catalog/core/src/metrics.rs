//! The catalog's figures for `GET /metrics` (through the
//! `shop:catalog/metrics` contract). Each is one count read from an index:
//! `products_stock (active, stock_on_hand)` and the partial
//! `reservations_holding (expires_at) WHERE holding = 1`, which holds only
//! the live holds and the few lapsed ones not yet swept.

use storage::{Db, DbError};

/// What the catalog reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockFigures {
    /// Active products with no units on hand (units all held by unpaid
    /// orders are not counted: see `live_reservations`).
    pub products_out_of_stock: i64,
    /// Stock holds that still hold: not committed, released or lapsed.
    pub live_reservations: i64,
}

/// The figures at `now` (Unix seconds).
pub fn stock_figures(db: &dyn Db, now: i64) -> Result<StockFigures, DbError> {
    let count = |sql: &str, params: &[storage::Value]| -> Result<i64, DbError> {
        db.query(sql, params)?.first().map(|r| r.int("n")).transpose().map(|n| n.unwrap_or(0))
    };
    Ok(StockFigures {
        products_out_of_stock: count("SELECT COUNT(*) AS n FROM products WHERE active = 1 AND stock_on_hand = 0", &[])?,
        live_reservations: count("SELECT COUNT(*) AS n FROM reservations WHERE holding = 1 AND expires_at > ?", &[now.into()])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    #[test]
    fn counts_stock_outs_and_live_holds() {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        db.0.execute_batch(
            "INSERT INTO products (id, sku, name, description, price_minor, currency, stock_on_hand, active, created_at, updated_at) VALUES \
               ('p1', 'A', 'a', '', 100, 'USD', 0, 1, 't', 't'), \
               ('p2', 'B', 'b', '', 100, 'USD', 5, 1, 't', 't'), \
               ('p3', 'C', 'c', '', 100, 'USD', 0, 0, 't', 't'); \
             INSERT INTO reservations (order_id, status, expires_at, created_at, updated_at, holding) VALUES \
               ('o1', 'reserved', 200, 't', 't', 1), ('o2', 'reserved', 50, 't', 't', 1), ('o3', 'committed', 200, 't', 't', 0);",
        )
        .unwrap();
        assert_eq!(stock_figures(&db, 100).unwrap(), StockFigures { products_out_of_stock: 1, live_reservations: 1 });
    }
}
