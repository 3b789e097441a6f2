//! The inventory contract (`shop:catalog/inventory`) as checkout uses it.
//! Spin composes the catalog's contract component into the orders and
//! payments components, so these are in-process calls.

use bindings::shop::catalog::inventory::{self, InventoryError, ReservationLine, ReserveError, Shortage};

mod bindings {
    spin_sdk::wit_bindgen::generate!({
        world: "inventory-client",
        path: "../../../wit",
        runtime_path: "spin_sdk::wit_bindgen::rt",
        generate_all,
    });
}

/// Checkout's view of the inventory contract once an order exists.
pub trait Inventory {
    /// Turn the order's reservation into a sale. `Ok(false)` when the
    /// reservation lapsed and its stock is gone.
    fn commit(&self, order_id: &str) -> Result<bool, String>;
    /// Give the order's held stock back. `Ok(false)` when its units are
    /// sold instead (nothing changed; see [`Inventory::return_sold`]).
    fn release(&self, order_id: &str) -> Result<bool, String>;
    /// Put the units of the order's sale back on hand: the order ended
    /// unpaid after all. Idempotent.
    fn return_sold(&self, order_id: &str) -> Result<(), String>;
    /// Sell the order's units after all, although its hold ended (a late
    /// payment honoured): all or nothing, `Ok(false)` when they are no
    /// longer all free.
    fn recommit(&self, order_id: &str) -> Result<bool, String>;
    /// Put units of the order's sale back on hand, once per `operation`:
    /// `lines` (product, quantity), or every unit still sold when empty.
    /// Returns what was put back.
    fn restock(&self, order_id: &str, operation: &str, lines: &[(String, u32)]) -> Result<Vec<(String, u32)>, HoldError>;
}

/// Why stock could not be held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldError {
    Short(Vec<(String, u32, i64)>),
    Refused(String),
    Unavailable(String),
}

fn hold_error(e: ReserveError) -> HoldError {
    match e {
        ReserveError::InsufficientStock(s) => {
            HoldError::Short(s.into_iter().map(|Shortage { product_id, requested, available }| (product_id, requested, available)).collect())
        }
        ReserveError::InvalidRequest(m) | ReserveError::Conflict(m) => HoldError::Refused(m),
        ReserveError::Unavailable(u) => HoldError::Unavailable(u.message),
    }
}

/// The inventory, through the WIT contract.
pub struct WitInventory;

impl WitInventory {
    /// Reserve all lines for the order (idempotent per order id).
    pub fn reserve(&self, order_id: &str, lines: &[(String, u32)], ttl_secs: u32) -> Result<(), HoldError> {
        let lines: Vec<ReservationLine> = lines.iter().map(|(p, q)| ReservationLine { product_id: p.clone(), quantity: *q }).collect();
        inventory::reserve(order_id, &lines, ttl_secs).map_err(hold_error)
    }

    /// Keep the order's hold for at least `ttl_secs` more. `Ok(false)` when
    /// it already lapsed or ended (nothing to extend).
    pub fn extend(&self, order_id: &str, ttl_secs: u32) -> Result<bool, String> {
        match inventory::extend(order_id, ttl_secs) {
            Ok(()) => Ok(true),
            Err(InventoryError::Unavailable(u)) => Err(u.message),
            Err(_) => Ok(false),
        }
    }
}

impl Inventory for WitInventory {
    fn commit(&self, order_id: &str) -> Result<bool, String> {
        match inventory::commit(order_id) {
            Ok(()) => Ok(true),
            Err(InventoryError::Expired) | Err(InventoryError::UnknownOrder) | Err(InventoryError::AlreadyReleased) => Ok(false),
            Err(InventoryError::AlreadyCommitted) => Ok(true),
            Err(InventoryError::Unavailable(u)) => Err(u.message),
        }
    }

    fn release(&self, order_id: &str) -> Result<bool, String> {
        match inventory::release(order_id) {
            Err(InventoryError::AlreadyCommitted) => Ok(false),
            Ok(()) | Err(InventoryError::UnknownOrder) => Ok(true),
            Err(InventoryError::Expired) | Err(InventoryError::AlreadyReleased) => Ok(true),
            Err(InventoryError::Unavailable(u)) => Err(u.message),
        }
    }

    fn return_sold(&self, order_id: &str) -> Result<(), String> {
        match inventory::return_sold(order_id) {
            Ok(()) | Err(InventoryError::UnknownOrder) | Err(InventoryError::AlreadyReleased) => Ok(()),
            Err(InventoryError::Unavailable(u)) => Err(u.message),
            Err(e) => Err(format!("{e:?}")),
        }
    }

    fn recommit(&self, order_id: &str) -> Result<bool, String> {
        match inventory::recommit(order_id) {
            Ok(()) => Ok(true),
            Err(InventoryError::Unavailable(u)) => Err(u.message),
            Err(_) => Ok(false),
        }
    }

    fn restock(&self, order_id: &str, operation: &str, lines: &[(String, u32)]) -> Result<Vec<(String, u32)>, HoldError> {
        let lines: Vec<ReservationLine> = lines.iter().map(|(p, q)| ReservationLine { product_id: p.clone(), quantity: *q }).collect();
        inventory::restock(order_id, operation, &lines)
            .map(|back| back.into_iter().map(|l| (l.product_id, l.quantity)).collect())
            .map_err(hold_error)
    }
}
