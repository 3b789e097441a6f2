//! The orders service (routes: `/api/orders/...`).
//!
//! - `POST /api/orders` — place an order from the caller's cart
//! - `GET /api/orders`, `GET /api/orders/{id}`, `GET /api/orders/{id}/history`
//! - `GET /api/orders/all` — every customer's orders, filtered (admins)
//! - `GET /api/orders/{id}/invoice` — the invoice and credit notes (owner or
//!   admin; JSON, or printable HTML); `GET /api/orders/invoices` — every
//!   document of a period, JSON or CSV (admins)
//! - `POST /api/orders/{id}/cancel` — the owner, before shipping
//! - `PUT /api/orders/{id}/status`, `PUT /api/orders/{id}/tracking` — admins
//! - `POST /api/orders/sweep` — expire unpaid orders (scheduler, shared secret)
//! - `GET /api/orders/health`
//!
//! The cart is read and cleared through `shop:cart/cart`, prices come
//! from `shop:catalog/catalog` and stock is held through
//! `shop:catalog/inventory`; Spin composes those contract components into
//! this one (see `spin.toml`).

mod admin_listing;
mod handlers;
mod invoices;

use http_kit::{ApiError, Ctx, HandlerResult, Service};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

spin_sdk::wit_bindgen::generate!({
    world: "checkout-client",
    path: "../../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

const SERVICE: Service = Service { name: "orders" };

#[http_component]
fn handle(req: IncomingRequest) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    match (ctx.method.as_str(), ctx.segments().as_slice()) {
        (_, ["api", "orders", "health"]) => handlers::health(ctx),
        ("POST", ["api", "orders", "sweep"]) => handlers::sweep(ctx),
        (_, ["api", "orders", "sweep"]) => Err(ApiError::method_not_allowed(&["POST"])),
        ("POST", ["api", "orders"]) => handlers::place(ctx),
        ("GET", ["api", "orders"]) => handlers::list(ctx),
        (_, ["api", "orders"]) => Err(ApiError::method_not_allowed(&["GET", "HEAD", "POST"])),
        ("GET", ["api", "orders", "all"]) => admin_listing::list_all(ctx),
        ("GET", ["api", "orders", "invoices"]) => invoices::in_period(ctx),
        (_, ["api", "orders", "all" | "invoices"]) => Err(ApiError::method_not_allowed(&["GET", "HEAD"])),
        ("GET", ["api", "orders", id]) => handlers::get(ctx, id),
        (_, ["api", "orders", _]) => Err(ApiError::method_not_allowed(&["GET", "HEAD"])),
        ("GET", ["api", "orders", id, "history"]) => handlers::history(ctx, id),
        ("GET", ["api", "orders", id, "invoice"]) => invoices::of_order(ctx, id),
        (_, ["api", "orders", _, "history" | "invoice"]) => Err(ApiError::method_not_allowed(&["GET", "HEAD"])),
        ("POST", ["api", "orders", id, "cancel"]) => handlers::cancel(ctx, id),
        (_, ["api", "orders", _, "cancel"]) => Err(ApiError::method_not_allowed(&["POST"])),
        ("PUT", ["api", "orders", id, "status"]) => handlers::set_status(ctx, id),
        ("PUT", ["api", "orders", id, "tracking"]) => handlers::set_tracking(ctx, id),
        (_, ["api", "orders", _, "status" | "tracking"]) => Err(ApiError::method_not_allowed(&["PUT"])),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}
