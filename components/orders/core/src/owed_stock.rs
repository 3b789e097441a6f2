//! Stock changes owed: an order's change in the checkout database comes
//! first, the matching change of its stock in the catalog's after it.
//!
//! The two databases are separate, each with its own write lock. A payment
//! used to commit the order's stock while its own transaction held the
//! checkout database, and a cancellation or an expiry released it the same
//! way, so every other write there (orders being placed, paid, cancelled)
//! queued behind the catalog's lock as well. Now the transaction that
//! changes the order records what it owes the catalog — the sale of a paid
//! order's units ([`owe_sale`]), or the release of an unpaid order's hold
//! ([`owe_release`]) — and once it has committed, [`settle`] asks the
//! catalog (which does each once and answers the same again) and clears the
//! debt. A request that fails in between leaves the row, and the next
//! attempt — Stripe's redelivery, the same request again, the orders sweep
//! ([`settle_owed`]), or a restock of the order, which needs the sale
//! first — finishes it.
//!
//! Meanwhile a paid order's units stay held for it, so nobody else can buy
//! them; a hold that lapsed before the sale is still sold if its units are
//! free, and if they are gone the order is flagged `stock_unavailable` for
//! an admin. An ended order's units stay held until the release, or until
//! the hold lapses by itself.

use crate::inventory_client::Inventory;
use crate::domain::Status;
use crate::orders;
use storage::{Db, DbError};

/// Why an owed change could not be made now.
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

const SELL: &str = "sell";
const RELEASE: &str = "release";

fn owe(tx: &dyn Db, order_id: &str, action: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO owed_stock (order_id, action, created_at) VALUES (?, ?, ?) \
         ON CONFLICT (order_id) DO UPDATE SET action = excluded.action, created_at = excluded.created_at",
        &[order_id.into(), action.into(), clock::unix_now().into()],
    )
}

/// Record that the order's sale is owed. Run it in the transaction that
/// pays the order.
pub fn owe_sale(tx: &dyn Db, order_id: &str) -> Result<(), DbError> {
    owe(tx, order_id, SELL)
}

/// Record that the release of the order's hold is owed. Run it in the
/// transaction that ends the unpaid order.
pub fn owe_release(tx: &dyn Db, order_id: &str) -> Result<(), DbError> {
    owe(tx, order_id, RELEASE)
}

/// Forget what the order owes: its units were sold in the transaction that
/// calls this (a late payment honoured, which sells inside it).
pub fn forgive(tx: &dyn Db, order_id: &str) -> Result<(), DbError> {
    tx.execute("DELETE FROM owed_stock WHERE order_id = ?", &[order_id.into()])
}

/// What the order owes, if anything.
pub fn owed(db: &dyn Db, order_id: &str) -> Result<Option<String>, DbError> {
    db.query("SELECT action FROM owed_stock WHERE order_id = ?", &[order_id.into()])?.first().map(|r| r.text("action")).transpose()
}

/// Make the change the order owes, if it owes one, and clear the debt.
/// Returns whether there was one.
pub fn settle(db: &dyn Db, order_id: &str, inventory: &dyn Inventory) -> Result<bool, SettleError> {
    match owed(db, order_id)? {
        Some(action) => settle_action(db, order_id, &action, inventory).map(|()| true),
        None => Ok(false),
    }
}

fn settle_action(db: &dyn Db, order_id: &str, action: &str, inventory: &dyn Inventory) -> Result<(), SettleError> {
    if action == SELL {
        let sold = inventory.commit(order_id).map_err(SettleError::Unavailable)?;
        clear(db, order_id, action, |tx| {
            // Flagged by the one settle that cleared the debt (the webhook
            // and the success page may settle at once).
            if !sold {
                if let Some(order) = orders::load_locked(tx, order_id)? {
                    orders::flag(tx, &order, "stock_unavailable")?;
                }
            }
            Ok(())
        })
    } else {
        let released = inventory.release(order_id).map_err(SettleError::Unavailable)?;
        if released {
            return clear(db, order_id, action, |_| Ok(()));
        }
        // Its units are sold, yet the order ended unpaid: a late payment
        // honoured sold them, and its transaction then failed. Under the
        // order's lock, and only while the release is still owed (a late
        // payment that did pay the order forgave it), they go back on hand.
        clear(db, order_id, action, |tx| {
            let order = orders::load_locked(tx, order_id)?;
            if order.is_some_and(|o| matches!(o.status, Status::Cancelled | Status::Expired)) {
                inventory.return_sold(order_id).map_err(SettleError::Unavailable)?;
            }
            Ok(())
        })
    }
}

/// In one transaction: remove the debt if it is still `action`, and run
/// `then` only if this call removed it. The order's row is locked first,
/// as a payment locks it before it forgives the debt, so the two never wait
/// for each other in a cycle on Postgres.
fn clear(db: &dyn Db, order_id: &str, action: &str, then: impl FnOnce(&dyn Db) -> Result<(), SettleError>) -> Result<(), SettleError> {
    storage::transaction(db, |tx| -> Result<(), SettleError> {
        orders::lock(tx, order_id)?;
        let cleared = tx.query("DELETE FROM owed_stock WHERE order_id = ? AND action = ? RETURNING order_id", &[order_id.into(), action.into()])?;
        if cleared.is_empty() {
            return Ok(());
        }
        then(tx)
    })
}

/// Make owed changes of any order, oldest first, at most `limit` (the
/// orders sweep). Returns how many were made; one the catalog cannot do now
/// stays owed for the next attempt.
pub fn settle_owed(db: &dyn Db, limit: usize, inventory: &dyn Inventory) -> Result<usize, DbError> {
    let rows = db.query("SELECT order_id, action FROM owed_stock ORDER BY created_at LIMIT ?", &[(limit as i64).into()])?;
    let mut settled = 0;
    for row in rows.iter() {
        match settle_action(db, &row.text("order_id")?, &row.text("action")?, inventory) {
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
        released: Cell<u32>,
        returned: Cell<u32>,
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
        fn release(&self, order_id: &str) -> Result<bool, String> {
            if self.down.get() {
                return Err("catalog down".into());
            }
            if self.sold.borrow().iter().any(|o| o == order_id) {
                return Ok(false);
            }
            self.released.set(self.released.get() + 1);
            Ok(true)
        }
        fn return_sold(&self, _: &str) -> Result<(), String> {
            self.returned.set(self.returned.get() + 1);
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
        orders::test_order(&db);
        db
    }

    fn flags(db: &MemDb) -> Vec<String> {
        orders::load(db, "o1").unwrap().unwrap().flags
    }

    fn set_status(db: &MemDb, status: &str) {
        db.execute("UPDATE orders SET status = ? WHERE id = 'o1'", &[status.into()]).unwrap();
    }

    #[test]
    fn a_sale_owed_while_the_catalog_is_down_is_made_once_later() {
        let db = setup();
        let catalog = Catalog::default();
        owe_sale(&db, "o1").unwrap();
        owe_sale(&db, "o1").unwrap();
        catalog.down.set(true);
        assert!(matches!(settle(&db, "o1", &catalog), Err(SettleError::Unavailable(_))));
        assert_eq!(owed(&db, "o1").unwrap().as_deref(), Some("sell"), "still owed");
        assert_eq!(settle_owed(&db, 10, &catalog).unwrap(), 0, "the sweep leaves it for later too");

        catalog.down.set(false);
        assert_eq!(settle_owed(&db, 10, &catalog).unwrap(), 1);
        assert_eq!(owed(&db, "o1").unwrap(), None);
        assert_eq!(catalog.sold.borrow().as_slice(), ["o1"]);
        // Nothing owed: the catalog is not asked again.
        let asked = catalog.asked.get();
        assert!(!settle(&db, "o1", &catalog).unwrap());
        assert_eq!(catalog.asked.get(), asked);
        assert!(flags(&db).is_empty());
    }

    #[test]
    fn units_gone_by_the_time_the_sale_is_made_flag_the_order_once() {
        let db = setup();
        let catalog = Catalog { gone: Cell::new(true), ..Default::default() };
        owe_sale(&db, "o1").unwrap();
        assert!(settle(&db, "o1", &catalog).unwrap());
        assert_eq!(flags(&db), vec!["stock_unavailable".to_string()]);
        // A second settler that asked the catalog at the same time finds
        // the debt cleared and flags nothing more.
        settle_action(&db, "o1", SELL, &catalog).unwrap();
        assert_eq!(flags(&db), vec!["stock_unavailable".to_string()]);
        assert_eq!(owed(&db, "o1").unwrap(), None);
    }

    #[test]
    fn a_release_is_made_once_and_never_returns_the_units_of_a_paid_order() {
        let db = setup();
        let catalog = Catalog::default();
        set_status(&db, "expired");
        owe_release(&db, "o1").unwrap();
        catalog.down.set(true);
        assert!(matches!(settle(&db, "o1", &catalog), Err(SettleError::Unavailable(_))));
        catalog.down.set(false);
        assert!(settle(&db, "o1", &catalog).unwrap());
        assert_eq!((catalog.released.get(), catalog.returned.get()), (1, 0));
        assert_eq!(owed(&db, "o1").unwrap(), None);

        // Sold meanwhile: a late payment honoured, whose transaction failed
        // (the order stayed expired, the release still owed): the units go
        // back on hand.
        catalog.sold.borrow_mut().push("o1".into());
        owe_release(&db, "o1").unwrap();
        assert!(settle(&db, "o1", &catalog).unwrap());
        assert_eq!(catalog.returned.get(), 1);

        // Sold by a late payment that paid the order and forgave the
        // release, while a settler was already asking the catalog: nothing
        // goes back.
        owe_release(&db, "o1").unwrap();
        forgive(&db, "o1").unwrap();
        set_status(&db, "paid");
        settle_action(&db, "o1", RELEASE, &catalog).unwrap();
        assert_eq!(catalog.returned.get(), 1, "the paid order keeps its units");
    }
}
