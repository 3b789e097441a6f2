//! Who may see an order, and how the order errors reach clients — shared by the orders and payments components.

use crate::orders::{self, Order, OrderError};
use http_kit::auth::Caller;
use http_kit::ApiError;
use serde_json::json;
use storage::Db;

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::NotFound => ApiError::not_found("order"),
            OrderError::Transition(t) => ApiError::new(409, "invalid_transition", t.to_string())
                .with_details(json!({ "current_status": t.from, "requested_status": t.to })),
            OrderError::CartOrdered => cart_already_ordered(None),
            OrderError::Disputed(t) => ApiError::new(409, "order_disputed", "a card dispute of this order is open or was lost: it is not fulfilled while so")
                .with_details(json!({ "current_status": t.from, "requested_status": t.to })),
            OrderError::Storage(e) => e.into(),
        }
    }
}

/// 409 `cart_already_ordered`: the cart, at the version read, is an order
/// already (`details.order_id`, when known).
pub fn cart_already_ordered(order_id: Option<&str>) -> ApiError {
    let e = ApiError::new(409, "cart_already_ordered", "this cart, as it is, was already placed as an order; see your orders");
    match order_id {
        Some(id) => e.with_details(json!({ "order_id": id })),
        None => e,
    }
}

/// The order if `caller` owns it, or is an admin and `admin_ok`. Anyone else
/// gets the same 404 as for an order that does not exist. As stored: the
/// lazy expiry of an overdue unpaid order is `payments_core::access::order_for`
/// (expiring closes the order's payment objects too).
pub fn owned_order(db: &dyn Db, caller: &Caller, id: &str, admin_ok: bool) -> Result<Order, ApiError> {
    orders::load(db, id.trim())?
        .filter(|o| o.user_id == caller.user_id || (admin_ok && caller.is_admin()))
        .ok_or_else(|| ApiError::not_found("order"))
}
