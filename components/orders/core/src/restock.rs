//! Restocking: when a paid order is cancelled or refunded, an admin may put
//! its units back on hand — all of them, or some lines. The catalog counts
//! what each sold line returned (never more than it sold) and does each
//! operation once; the order's history says what went back and who chose it.

use crate::inventory_client::{HoldError, Inventory};
use crate::orders::{self, Order};
use storage::{Db, DbError};

/// What to put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restock {
    Nothing,
    /// Every unit of the order still sold.
    Everything,
    /// These products and quantities.
    Lines(Vec<(String, u32)>),
}

/// Why a restock did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum RestockError {
    /// The request names more than is left to restock, or a product the
    /// order does not have (nothing changed).
    Refused(String),
    /// The catalog could not be reached (nothing changed).
    Unavailable(String),
    Storage(DbError),
}

/// Put the units back once per `operation` (the Stripe refund id, or
/// `cancel`) and note it in the order's history. Returns what went back.
///
/// The restock is recorded as owed ([`owe`]) before the catalog is asked,
/// so a request that fails after the catalog put the units back but before
/// the note leaves the debt behind, and [`settle_owed`] (the same request
/// again, or the orders sweep) records it.
pub fn restock(db: &dyn Db, order: &Order, operation: &str, what: &Restock, actor: &str, inventory: &dyn Inventory) -> Result<Vec<(String, u32)>, RestockError> {
    if *what == Restock::Nothing {
        return Ok(Vec::new());
    }
    owe(db, &order.id, operation, what, actor).map_err(RestockError::Storage)?;
    settle(db, order, operation, what, actor, inventory)
}

/// The operation of a cancellation's restock: `cancel:all` for every unit
/// still sold, and `cancel:<16 hex digits of a SHA-256 of the lines, in
/// product order>` for chosen lines (`cancel` alone, what every
/// cancellation's restock was called before, is left to those made then). It follows from what is asked, so the
/// same request again is the same operation (the catalog does it once),
/// and a later restock of other lines is an operation of its own (found
/// in review: every cancellation's restock was `cancel`, so a second one
/// naming other lines was answered with the first and put nothing back).
/// The catalog never returns more of a line than it sold.
pub fn cancel_operation(what: &Restock) -> String {
    use sha2::{Digest, Sha256};
    match what {
        Restock::Nothing | Restock::Everything => "cancel:all".into(),
        Restock::Lines(lines) => {
            let mut sorted = lines.clone();
            sorted.sort();
            let canonical: Vec<String> = sorted.iter().map(|(p, q)| format!("{p}={q}")).collect();
            let digest = Sha256::digest(canonical.join("\n").as_bytes());
            format!("cancel:{}", digest.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>())
        }
    }
}

/// Record that `operation`'s restock of the order is owed. Run it in the
/// transaction of the change that owes it (a cancellation) where there is
/// one. Owing the same operation twice keeps the first.
pub fn owe(tx: &dyn Db, order_id: &str, operation: &str, what: &Restock, actor: &str) -> Result<(), DbError> {
    let lines = match what {
        Restock::Nothing => return Ok(()),
        Restock::Everything => serde_json::json!([]),
        Restock::Lines(lines) => serde_json::json!(lines),
    };
    tx.execute(
        "INSERT INTO owed_restocks (order_id, operation, lines, actor, created_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (order_id, operation) DO NOTHING",
        &[order_id.into(), operation.into(), lines.to_string().into(), actor.into(), clock::unix_now().into()],
    )
}

/// Ask the catalog for `operation`'s restock (it does each operation once
/// and answers the same again), then, in one transaction, note what went
/// back and clear the debt. For a restock already owed ([`owe`], in the
/// transaction that cancelled the order); [`restock`] owes and settles.
pub fn settle(db: &dyn Db, order: &Order, operation: &str, what: &Restock, actor: &str, inventory: &dyn Inventory) -> Result<Vec<(String, u32)>, RestockError> {
    let lines = match what {
        Restock::Nothing => return Ok(Vec::new()),
        Restock::Everything => Vec::new(),
        Restock::Lines(lines) => lines.clone(),
    };
    // The units are sold before they can go back: a sale still owed (the
    // payment's request failed before the catalog was asked) is made first.
    crate::owed_stock::settle(db, &order.id, inventory).map_err(|e| match e {
        crate::owed_stock::SettleError::Unavailable(m) => RestockError::Unavailable(m),
        crate::owed_stock::SettleError::Storage(d) => RestockError::Storage(d),
    })?;
    let back = inventory.restock(&order.id, operation, &lines).map_err(|e| match e {
        HoldError::Unavailable(m) => RestockError::Unavailable(m),
        HoldError::Refused(m) => RestockError::Refused(m),
        HoldError::Short(_) => RestockError::Refused("nothing to restock".into()),
    });
    let back = match back {
        Ok(back) => back,
        // Refused: there is nothing to put back (and never will be), so
        // nothing is owed any more. Unavailable: still owed.
        Err(e @ RestockError::Refused(_)) => {
            clear(db, &order.id, operation).map_err(RestockError::Storage)?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let sku = |product: &str| order.lines.iter().find(|l| l.product_id == product).map(|l| l.sku.clone()).unwrap_or_else(|| product.to_string());
    let what: Vec<String> = back.iter().map(|(p, q)| format!("{q} × {}", sku(p))).collect();
    let reason = format!("restocked ({operation}): {}", what.join(", "));
    storage::transaction(db, |tx| -> Result<(), DbError> {
        clear(tx, &order.id, operation)?;
        if back.is_empty() {
            return Ok(());
        }
        // The same operation again (a retried request) is noted once.
        let already = tx.query("SELECT 1 AS one FROM order_history WHERE order_id = ? AND reason = ?", &[order.id.as_str().into(), reason.as_str().into()])?;
        if already.is_empty() {
            orders::note(tx, order, actor, &reason)?;
        }
        Ok(())
    })
    .map_err(RestockError::Storage)?;
    Ok(back)
}

fn clear(db: &dyn Db, order_id: &str, operation: &str) -> Result<(), DbError> {
    db.execute("DELETE FROM owed_restocks WHERE order_id = ? AND operation = ?", &[order_id.into(), operation.into()])
}

/// Finish restocks still owed — of one order (`Some`: a retried request
/// for it), or of any order (`None`: the sweep), at most `limit`, oldest
/// first. Returns how many were settled; one the catalog cannot do now
/// stays owed for the next attempt.
pub fn settle_owed(db: &dyn Db, order_id: Option<&str>, limit: usize, inventory: &dyn Inventory) -> Result<usize, DbError> {
    let rows = match order_id {
        Some(id) => db.query("SELECT * FROM owed_restocks WHERE order_id = ? ORDER BY created_at LIMIT ?", &[id.into(), (limit as i64).into()])?,
        None => db.query("SELECT * FROM owed_restocks ORDER BY created_at LIMIT ?", &[(limit as i64).into()])?,
    };
    let mut settled = 0;
    for row in rows.iter() {
        let (id, operation, actor) = (row.text("order_id")?, row.text("operation")?, row.text("actor")?);
        let lines: Vec<(String, u32)> = serde_json::from_str(&row.text("lines")?).map_err(|e| DbError::Other(e.to_string()))?;
        let what = if lines.is_empty() { Restock::Everything } else { Restock::Lines(lines) };
        let Some(order) = orders::load(db, &id)? else {
            clear(db, &id, &operation)?;
            continue;
        };
        match settle(db, &order, &operation, &what, &actor, inventory) {
            Ok(_) | Err(RestockError::Refused(_)) => settled += 1,
            Err(RestockError::Storage(e)) => return Err(e),
            Err(RestockError::Unavailable(_)) => {}
        }
    }
    Ok(settled)
}

/// One line of a restock request.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestockLine {
    pub product_id: String,
    pub quantity: u32,
}

/// The restock choice of a request (`restock`, `restock_lines`), checked
/// against the order's lines before anything happens: `restock: true` is
/// every unit still sold, `restock_lines` some of them, `restock: false`
/// nothing; neither given is `default`.
pub fn choice(order: &Order, restock: Option<bool>, lines: Option<Vec<RestockLine>>, default: bool) -> Result<Restock, http_kit::ApiError> {
    let invalid = |field: &str, why: String| http_kit::ApiError::validation([(field.to_string(), serde_json::json!(why))].into_iter().collect());
    match (restock, lines) {
        (Some(false), Some(_)) => Err(invalid("restock_lines", "cannot be given with restock: false".into())),
        (_, Some(lines)) => {
            if lines.is_empty() {
                return Err(invalid("restock_lines", "must name at least one line".into()));
            }
            let mut seen = std::collections::BTreeSet::new();
            for l in &lines {
                let Some(sold) = order.lines.iter().find(|o| o.product_id == l.product_id) else {
                    return Err(invalid("restock_lines", format!("{} is not a product of this order", l.product_id)));
                };
                if l.quantity == 0 || l.quantity > sold.quantity || !seen.insert(l.product_id.as_str()) {
                    return Err(invalid("restock_lines", format!("{}: each product once, 1 to {} units", l.product_id, sold.quantity)));
                }
            }
            Ok(Restock::Lines(lines.into_iter().map(|l| (l.product_id, l.quantity)).collect()))
        }
        (Some(true), None) => Ok(Restock::Everything),
        (Some(false), None) => Ok(Restock::Nothing),
        (None, None) => Ok(if default { Restock::Everything } else { Restock::Nothing }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory_client::HoldError;
    use std::cell::{Cell, RefCell};
    use storage::native::MemDb;

    /// The catalog's side: each operation once, the same answer again.
    #[derive(Default)]
    struct Catalog {
        done: RefCell<Vec<(String, Vec<(String, u32)>)>>,
        calls: Cell<u32>,
        down: Cell<bool>,
    }

    impl Inventory for Catalog {
        fn commit(&self, _: &str) -> Result<bool, String> {
            Ok(true)
        }
        fn release(&self, _: &str) -> Result<bool, String> {
            Ok(true)
        }
        fn return_sold(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn recommit(&self, _: &str) -> Result<bool, String> {
            Ok(true)
        }
        fn restock(&self, _: &str, operation: &str, lines: &[(String, u32)]) -> Result<Vec<(String, u32)>, HoldError> {
            self.calls.set(self.calls.get() + 1);
            if self.down.get() {
                return Err(HoldError::Unavailable("catalog down".into()));
            }
            if let Some((_, back)) = self.done.borrow().iter().find(|(op, _)| op == operation) {
                return Ok(back.clone());
            }
            let back = if lines.is_empty() { vec![("p1".to_string(), 2)] } else { lines.to_vec() };
            self.done.borrow_mut().push((operation.to_string(), back.clone()));
            Ok(back)
        }
    }

    fn notes(db: &MemDb) -> Vec<String> {
        let rows = db.query("SELECT reason FROM order_history WHERE reason LIKE 'restocked%' ORDER BY id", &[]).unwrap();
        rows.iter().map(|r| r.text("reason").unwrap()).collect()
    }

    fn owed(db: &MemDb) -> usize {
        db.query("SELECT 1 AS one FROM owed_restocks", &[]).unwrap().len()
    }

    #[test]
    fn a_restock_owed_when_the_catalog_is_down_is_settled_once_later() {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let order = crate::orders::test_order(&db);
        let catalog = Catalog::default();
        catalog.down.set(true);
        assert!(matches!(restock(&db, &order, "cancel", &Restock::Everything, "admin:a", &catalog), Err(RestockError::Unavailable(_))));
        assert_eq!((owed(&db), notes(&db).len()), (1, 0), "still owed, nothing noted");

        catalog.down.set(false);
        assert_eq!(settle_owed(&db, None, 50, &catalog).unwrap(), 1);
        assert_eq!(owed(&db), 0);
        assert_eq!(notes(&db), vec!["restocked (cancel): 2 × A".to_string()]);
        assert_eq!(settle_owed(&db, Some("o1"), 50, &catalog).unwrap(), 0, "nothing left to settle");
        // The same operation asked again is noted once and puts nothing back twice.
        restock(&db, &order, "cancel", &Restock::Everything, "admin:a", &catalog).unwrap();
        assert_eq!(notes(&db).len(), 1);
        assert_eq!(catalog.done.borrow().len(), 1);
    }

    #[test]
    fn a_cancellation_restock_is_one_operation_per_set_of_lines() {
        let a = Restock::Lines(vec![("p1".into(), 1), ("p2".into(), 2)]);
        let same = Restock::Lines(vec![("p2".into(), 2), ("p1".into(), 1)]);
        let other = Restock::Lines(vec![("p1".into(), 1)]);
        assert_eq!(cancel_operation(&Restock::Everything), "cancel:all");
        assert_eq!(cancel_operation(&a), cancel_operation(&same), "the same lines in any order");
        assert_ne!(cancel_operation(&a), cancel_operation(&other));
        assert!(cancel_operation(&a).starts_with("cancel:") && cancel_operation(&a).len() == 23);
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let order = crate::orders::test_order(&db);
        let catalog = Catalog::default();
        let first = Restock::Lines(vec![("p1".into(), 1)]);
        restock(&db, &order, &cancel_operation(&first), &first, "admin:a", &catalog).unwrap();
        restock(&db, &order, &cancel_operation(&first), &first, "admin:a", &catalog).unwrap();
        // Then the rest: a restock of its own, noted as such.
        restock(&db, &order, &cancel_operation(&Restock::Everything), &Restock::Everything, "admin:a", &catalog).unwrap();
        assert_eq!(catalog.done.borrow().len(), 2, "the repeated request once, the other its own");
        assert_eq!(notes(&db).len(), 2, "{:?}", notes(&db));
    }

    #[test]
    fn a_restock_the_catalog_made_but_not_noted_is_noted_by_the_next_settle() {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let order = crate::orders::test_order(&db);
        let catalog = Catalog::default();
        // The cancellation owed it, the catalog did it, then the request died
        // before its note (here: the note never ran).
        owe(&db, &order.id, "cancel", &Restock::Lines(vec![("p1".into(), 1)]), "user:u1").unwrap();
        catalog.restock(&order.id, "cancel", &[("p1".into(), 1)]).unwrap();
        assert_eq!(settle_owed(&db, Some("o1"), 10, &catalog).unwrap(), 1);
        assert_eq!(notes(&db), vec!["restocked (cancel): 1 × A".to_string()]);
        assert_eq!(catalog.done.borrow().len(), 1, "the catalog's answer again, no second restock");
        assert_eq!(owed(&db), 0);
        // Nothing owed: nothing to do.
        owe(&db, &order.id, "refund-1", &Restock::Nothing, "admin:a").unwrap();
        assert_eq!(owed(&db), 0);
    }
}
