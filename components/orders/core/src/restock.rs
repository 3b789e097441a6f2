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
pub fn restock(db: &dyn Db, order: &Order, operation: &str, what: &Restock, actor: &str, inventory: &dyn Inventory) -> Result<Vec<(String, u32)>, RestockError> {
    let lines = match what {
        Restock::Nothing => return Ok(Vec::new()),
        Restock::Everything => Vec::new(),
        Restock::Lines(lines) => lines.clone(),
    };
    let back = inventory.restock(&order.id, operation, &lines).map_err(|e| match e {
        HoldError::Unavailable(m) => RestockError::Unavailable(m),
        HoldError::Refused(m) => RestockError::Refused(m),
        HoldError::Short(_) => RestockError::Refused("nothing to restock".into()),
    })?;
    if !back.is_empty() {
        let sku = |product: &str| order.lines.iter().find(|l| l.product_id == product).map(|l| l.sku.clone()).unwrap_or_else(|| product.to_string());
        let what: Vec<String> = back.iter().map(|(p, q)| format!("{q} × {}", sku(p))).collect();
        let reason = format!("restocked ({operation}): {}", what.join(", "));
        // The same operation again (a retried request) is noted once.
        let already = db
            .query("SELECT 1 AS one FROM order_history WHERE order_id = ? AND reason = ?", &[order.id.as_str().into(), reason.as_str().into()])
            .map_err(RestockError::Storage)?;
        if already.is_empty() {
            orders::note(db, order, actor, &reason).map_err(RestockError::Storage)?;
        }
    }
    Ok(back)
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
