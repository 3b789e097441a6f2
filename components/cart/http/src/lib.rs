//! The cart service (routes: `/api/cart/...`).
//!
//! Carts live in the Spin key-value store labelled `carts` (see `cart-core`)
//! and are priced live through the `shop:catalog/catalog` contract, which
//! Spin composes into this component from the catalog's contract component
//! (see `[component.cart.dependencies]` in `spin.toml`). The cart never reads
//! the catalog's tables itself.
//!
//! - `GET /api/cart`, `DELETE /api/cart`
//! - `POST /api/cart/items`, `PUT|DELETE /api/cart/items/{product_id}`
//! - `POST /api/cart/sweep` — remove expired guest carts (scheduler, shared secret)
//! - `GET /api/cart/health`

mod handlers;
mod identity;

use http_kit::{ApiError, Ctx, HandlerResult, Service};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

spin_sdk::wit_bindgen::generate!({
    world: "catalog-client",
    path: "../../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

const SERVICE: Service = Service { name: "cart" };

#[http_component]
fn handle(req: IncomingRequest) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    match (ctx.method.as_str(), ctx.segments().as_slice()) {
        ("GET", ["api", "cart"]) => handlers::get_cart(ctx),
        ("DELETE", ["api", "cart"]) => handlers::clear_cart(ctx),
        (_, ["api", "cart"]) => Err(ApiError::method_not_allowed(&["GET", "HEAD", "DELETE"])),
        ("POST", ["api", "cart", "items"]) => handlers::add_item(ctx),
        (_, ["api", "cart", "items"]) => Err(ApiError::method_not_allowed(&["POST"])),
        ("PUT", ["api", "cart", "items", id]) => handlers::set_item(ctx, id),
        ("DELETE", ["api", "cart", "items", id]) => handlers::remove_item(ctx, id),
        (_, ["api", "cart", "items", _]) => Err(ApiError::method_not_allowed(&["PUT", "DELETE"])),
        (_, ["api", "cart", "health"]) => handlers::health(ctx),
        ("POST", ["api", "cart", "sweep"]) => handlers::sweep(ctx),
        (_, ["api", "cart", "sweep"]) => Err(ApiError::method_not_allowed(&["POST"])),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}
