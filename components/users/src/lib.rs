//! The users service (routes: /api/auth/..., /api/users/..., /api/admin/users/...).
//!
//! Today it answers its health check; its API arrives with the users issue (#3).
//! Every other path under its routes gets the standard 404 envelope.

use http_kit::{ApiError, Ctx, HandlerResult, Service};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

const SERVICE: Service = Service { name: "users" };

#[http_component]
fn handle(req: Request) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    match ctx.segments().as_slice() {
        ["api", "users", "health"] => http_kit::health::report(ctx, SERVICE.name, Vec::new()),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}
