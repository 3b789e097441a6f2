//! `GET /api/orders/all`: every customer's orders for the admin console,
//! filtered by status, the day placed, the start of the order id or the
//! customer's account ids (the console turns an email search into those
//! through `GET /api/admin/users?email=`; emails live in the users service).

use http_kit::{ApiError, Ctx, HandlerResult, Pagination, Reply};
use orders_core::admin_listing::{self, Day, OrderFilter, OrderIdPrefix, MAX_USER_IDS};
use orders_core::domain::Status;
use orders_core::schema;
use payments_core::access;
use serde_json::json;

/// Parse the query into a filter: every problem is a 400 naming the parameter.
fn filter(ctx: &Ctx) -> Result<OrderFilter, ApiError> {
    let q = &ctx.query;
    let status = q
        .get("status")
        .map(|raw| Status::parse(raw.trim()).ok_or_else(|| ApiError::invalid_parameter("status", "must be an order status")))
        .transpose()?;
    let day = |name: &str| q.get(name).map(|raw| Day::parse(raw).map_err(|e| ApiError::invalid_parameter(name, e))).transpose();
    let created_from = day("created_from")?;
    let created_to = day("created_to")?;
    // A range that ends before it starts is valid and matches nothing.
    let order_id = q.get("order_id").map(|raw| OrderIdPrefix::parse(raw).map_err(|e| ApiError::invalid_parameter("order_id", e))).transpose()?;
    let user_ids: Vec<String> = q
        .get("user_id")
        .map(|raw| raw.split(',').map(|u| u.trim().to_ascii_lowercase()).filter(|u| !u.is_empty()).collect())
        .unwrap_or_default();
    if user_ids.len() > MAX_USER_IDS {
        return Err(ApiError::invalid_parameter("user_id", format!("names at most {MAX_USER_IDS} accounts")));
    }
    if user_ids.iter().any(|u| u.len() > 64 || !u.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')) {
        return Err(ApiError::invalid_parameter("user_id", "must be account ids separated by commas"));
    }
    Ok(OrderFilter { status, created_from, created_to, order_id, user_ids })
}

pub fn list_all(ctx: &Ctx) -> HandlerResult {
    ctx.admin()?;
    let filter = filter(ctx)?;
    let page = Pagination::from_query(&ctx.query)?;
    let db = schema::open_database()?;
    let (found, total) = admin_listing::list_all(&db, &filter, page.limit, page.offset())?;
    let mut orders = Vec::with_capacity(found.len());
    for order in found {
        let order = access::expire_if_overdue(&db, order)?;
        let mut shown = serde_json::to_value(&order).map_err(ApiError::internal)?;
        // The admin view names the customer (the public Order leaves it out).
        shown["user_id"] = json!(order.user_id);
        orders.push(shown);
    }
    Ok(Reply::ok(&json!({ "orders": orders, "page": page.page, "limit": page.limit, "total": total })).with_header("cache-control", "no-store"))
}
