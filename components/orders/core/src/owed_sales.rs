//! Sales owed: a paid order's stock hold becomes a sale after the payment's
//! transaction, not inside it.
//!
//! The checkout database and the catalog's are separate, each with its own
//! write lock. A payment used to commit the order's stock while its own
//! transaction held the checkout database, so every other write there
//! (orders being placed, cancelled, expired) queued behind the catalog's
//! lock as well. Now the paying transaction records the sale as owed
//! ([`owe`]); once it has committed, [`settle`] asks the catalog (which
//! commits a reservation once and answers the same again) and clears the
//! debt. A request that fails in between leaves the row, and the next
//! attempt — Stripe's redelivery, the success page again, the orders sweep
//! ([`settle_owed`]), or a restock of the order, which needs the sale
//! first — finishes it.
//!
//! Meanwhile the units stay held for the order, so nobody else can buy them;
//! they move from held to sold when the debt is settled. A hold that lapsed
//! before that (the catalog was down longer than the hold) is still sold if
//! its units are free; if they are gone the order is flagged
//! `stock_unavailable` for an admin, as it always was.

use crate::inventory_client::Inventory;
use crate::orders;
use storage::{Db, DbError};

/// Why a sale could not be settled now.
#[derive(Debug, Clone, PartialEq)]
pub enum SettleError {
    /// The catalog could not be reached: still owed.
    Unavailable(String),
    Storage(DbError),
}

impl From<DbError> for SettleError {
    fn from(e: DbError) -> Self {
        Self::Storage(e)
    }
}

/// Record that the order's sale is owed. Run it in the transaction that
/// pays the order. Owing it twice keeps the first.
pub fn owe(tx: &dyn Db, order_id: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO owed_sales (order_id, created_at) VALUES (?, ?) ON CONFLICT (order_id) DO NOTHING",
        &[order_id.into(), clock::unix_now().into()],
    )
}

/// Is the order's sale still owed?
pub fn is_owed(db: &dyn Db, order_id: &str) -> Result<bool, DbError> {
    Ok(!db.query("SELECT 1 AS one FROM owed_sales WHERE order_id = ?", &[order_id.into()])?.is_empty())
}

/// Settle the order's owed sale, if it has one: the catalog sells the held
/// units, and the debt is cleared. Units the catalog no longer has (the hold
/// lapsed and someone else took them) flag the order `stock_unavailable`,
/// in the transaction that clears the debt. Returns whether a debt was
/// settled.
pub fn settle(db: &dyn Db, order_id: &str, inventory: &dyn Inventory) -> Result<bool, SettleError> {
    if !is_owed(db, order_id)? {
        return Ok(false);
    }
    settle_owed_sale(db, order_id, inventory)?;
    Ok(true)
}

/// [`settle`] for an order known to owe its sale (just paid by this
/// request): one query fewer.
pub fn settle_owed_sale(db: &dyn Db, order_id: &str, inventory: &dyn Inventory) -> Result<(), SettleError> {
    let sold = inventory.commit(order_id).map_err(SettleError::Unavailable)?;
    storage::transaction(db, |tx| -> Result<(), DbError> {
        let cleared = tx.query("DELETE FROM owed_sales WHERE order_id = ? RETURNING order_id", &[order_id.into()])?;
        // A concurrent settle of the same debt (the webhook and the success
        // page at once) flags at most once: only the one that cleared it.
        if !sold && !cleared.is_empty() {
            if let Some(order) = orders::load_locked(tx, order_id)? {
                orders::flag(tx, &order, "stock_unavailable")?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// Settle owed sales of any order, oldest first, at most `limit` (the orders
/// sweep). Returns how many were settled; one the catalog cannot do now
/// stays owed for the next attempt.
pub fn settle_owed(db: &dyn Db, limit: usize, inventory: &dyn Inventory) -> Result<usize, DbError> {
    let rows = db.query("SELECT order_id FROM owed_sales ORDER BY created_at LIMIT ?", &[(limit as i64).into()])?;
    let mut settled = 0;
    for row in rows.iter() {
        match settle_owed_sale(db, &row.text("order_id")?, inventory) {
            Ok(()) => settled += 1,
            Err(SettleError::Unavailable(_)) => {}
            Err(SettleError::Storage(e)) => return Err(e),
        }
    }
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory_client::HoldError;
    use crate::orders::{NewOrder, OrderLine};
    use money::{Currency, Money};
    use std::cell::{Cell, RefCell};
    use storage::native::MemDb;

    /// A catalog that sells each order once, can be down, or can have lost
    /// the units.
    #[derive(Default)]
    struct Catalog {
        down: Cell<bool>,
        gone: Cell<bool>,
        sold: RefCell<Vec<String>>,
        asked: Cell<u32>,
    }

    impl Inventory for Catalog {
        fn commit(&self, order_id: &str) -> Result<bool, String> {
            self.asked.set(self.asked.get() + 1);
            if self.down.get() {
                return Err("catalog down".into());
            }
            if self.gone.get() {
                return Ok(false);
            }
            if !self.sold.borrow().iter().any(|o| o == order_id) {
                self.sold.borrow_mut().push(order_id.to_string());
            }
            Ok(true)
        }
        fn release(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn recommit(&self, _: &str) -> Result<bool, String> {
            Ok(true)
        }
        fn restock(&self, _: &str, _: &str, _: &[(String, u32)]) -> Result<Vec<(String, u32)>, HoldError> {
            Ok(Vec::new())
        }
    }

    fn setup() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let usd = |n| Money::new(n, Currency::parse("USD").unwrap());
        let new = NewOrder {
            id: "o1".into(),
            user_id: "u1".into(),
            currency: Currency::parse("USD").unwrap(),
            lines: vec![OrderLine { product_id: "p1".into(), sku: "A".into(), name: "A".into(), unit_price: usd(250), quantity: 2, line_total: usd(500) }],
            shipping_address: None,
            expires_at: 2000,
        };
        storage::transaction(&db, |tx| orders::insert(tx, &new, "user:u1")).unwrap();
        db
    }

    fn flags(db: &MemDb) -> Vec<String> {
        orders::load(db, "o1").unwrap().unwrap().flags
    }

    #[test]
    fn a_sale_owed_while_the_catalog_is_down_is_settled_once_later() {
        let db = setup();
        let catalog = Catalog::default();
        owe(&db, "o1").unwrap();
        owe(&db, "o1").unwrap();
        catalog.down.set(true);
        assert!(matches!(settle(&db, "o1", &catalog), Err(SettleError::Unavailable(_))));
        assert!(is_owed(&db, "o1").unwrap(), "still owed");
        assert_eq!(settle_owed(&db, 10, &catalog).unwrap(), 0, "the sweep leaves it for later too");

        catalog.down.set(false);
        assert_eq!(settle_owed(&db, 10, &catalog).unwrap(), 1);
        assert!(!is_owed(&db, "o1").unwrap());
        assert_eq!(catalog.sold.borrow().as_slice(), ["o1"]);
        // Nothing owed: the catalog is not asked again.
        let asked = catalog.asked.get();
        assert!(!settle(&db, "o1", &catalog).unwrap());
        assert_eq!(catalog.asked.get(), asked);
        assert!(flags(&db).is_empty());
    }

    #[test]
    fn units_gone_by_the_time_the_sale_is_settled_flag_the_order_once() {
        let db = setup();
        let catalog = Catalog { gone: Cell::new(true), ..Default::default() };
        owe(&db, "o1").unwrap();
        assert!(settle(&db, "o1", &catalog).unwrap());
        assert_eq!(flags(&db), vec!["stock_unavailable".to_string()]);
        // A second settler that asked the catalog at the same time finds
        // the debt cleared and flags nothing more.
        settle_owed_sale(&db, "o1", &catalog).unwrap();
        assert_eq!(flags(&db), vec!["stock_unavailable".to_string()]);
        assert!(!is_owed(&db, "o1").unwrap());
    }
}
