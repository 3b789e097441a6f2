//! The cart service (routes: /api/cart/...).
//!
//! Carts live in the Spin key-value store labelled `carts` and are priced
//! live through the `shop:platform/catalog` contract, which Spin composes
//! into this component from the catalog's contract component (see
//! `[component.cart.dependencies]` in `spin.toml`). Today the service answers
//! its health check, which exercises both; the cart API arrives with the
//! cart issue (#5).

use http_kit::health::Check;
use http_kit::{ApiError, Ctx, HandlerResult, Service};
use serde_json::json;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

spin_sdk::wit_bindgen::generate!({
    world: "catalog-client",
    path: "../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

const SERVICE: Service = Service { name: "cart" };

/// The key-value store label that holds carts.
const CART_STORE: &str = "carts";

#[http_component]
fn handle(req: Request) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    match ctx.segments().as_slice() {
        ["api", "cart", "health"] => health(ctx),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}

/// Ready when the cart store opens and the catalog contract answers a look-up
/// (a real query against the catalog database, through the composed dependency).
fn health(ctx: &Ctx) -> HandlerResult {
    let store = Check {
        name: "store",
        result: Store::open(CART_STORE)
            .and_then(|s| s.exists("health-probe"))
            .map(|_| json!({ "status": "ok", "label": CART_STORE }))
            .map_err(|e| e.to_string()),
    };
    let catalog = Check {
        name: "catalog",
        result: shop::platform::catalog::get_products(&["00000000-0000-4000-8000-000000000000".to_string()])
            .map(|found| json!({ "status": "ok", "contract": "shop:platform/catalog@0.1.0", "probe_matches": found.len() }))
            .map_err(|e| e.message),
    };
    http_kit::health::report(ctx, SERVICE.name, vec![store, catalog])
}
