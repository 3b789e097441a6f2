//! A customer's payment data, for the export of their data: each order's
//! Stripe objects and the automatic refunds made to them. Erasure keeps
//! them (the shop's books); they carry no address or card data.

use serde_json::{json, Value as Json};
use storage::{Db, DbError};

/// Add an order's payment objects and automatic refunds to its export.
pub fn add_payments(db: &dyn Db, order_id: &str, order: &mut Json) -> Result<(), DbError> {
    order["payment_objects"] = json!(crate::ledger::objects_of(db, order_id)?);
    order["automatic_refunds"] = json!(crate::refunds::automatic_refunds(db, order_id)?);
    Ok(())
}
