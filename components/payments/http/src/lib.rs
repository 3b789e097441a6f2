//! The payments service: Stripe for the orders placed by checkout.
//!
//! - `POST /api/payments/checkout-session {order_id}` → `{id, url}`
//! - `POST /api/payments/create-intent {order_id}` → `{id, client_secret}`
//! - `GET /api/payments/order/{order_id}` — the payment state (owner or admin)
//! - `GET /api/payments/checkout-session/{id}` — the success page's return:
//!   retrieves the session and applies it exactly as the webhook would
//! - `POST /api/payments/refund {order_id, amount?}` — admins
//! - `POST /api/webhooks/stripe` — signed events from Stripe
//! - `GET /api/payments/health`
//!
//! Orders and payments share the checkout database (`orders-core`), so an
//! event and the order change it causes commit in one transaction; stock is
//! committed or released through the `shop:catalog/inventory` contract.

mod handlers;

use http_kit::{ApiError, Ctx, HandlerResult, Service};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

const SERVICE: Service = Service { name: "payments" };

#[http_component]
fn handle(req: IncomingRequest) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    match (ctx.method.as_str(), ctx.segments().as_slice()) {
        ("POST", ["api", "webhooks", "stripe"]) => handlers::webhook(ctx),
        (_, ["api", "webhooks", "stripe"]) => Err(ApiError::method_not_allowed(&["POST"])),
        (_, ["api", "payments", "health"]) => handlers::health(ctx),
        ("POST", ["api", "payments", "checkout-session"]) => handlers::checkout_session(ctx),
        ("GET", ["api", "payments", "checkout-session", id]) => handlers::session_return(ctx, id),
        ("POST", ["api", "payments", "create-intent"]) => handlers::create_intent(ctx),
        ("GET", ["api", "payments", "order", id]) => handlers::payment_of_order(ctx, id),
        ("POST", ["api", "payments", "refund"]) => handlers::refund(ctx),
        (_, ["api", "payments", "checkout-session" | "create-intent" | "refund"]) => Err(ApiError::method_not_allowed(&["POST"])),
        (_, ["api", "payments", "checkout-session" | "order", _]) => Err(ApiError::method_not_allowed(&["GET", "HEAD"])),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}
