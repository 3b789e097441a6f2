//! The notifications service (routes: /api/notifications/..., /api/admin/notifications/...).
//!
//! Today it answers its health check; its API arrives with the notifications issue (#7).
//! Every other path under its routes gets the standard 404 envelope.

use http_kit::{ApiError, Ctx, HandlerResult, Service};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

const SERVICE: Service = Service { name: "notifications" };

#[http_component]
fn handle(req: Request) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    match ctx.segments().as_slice() {
        ["api", "notifications", "health"] => http_kit::health::report(ctx, SERVICE.name, Vec::new()),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}
