//! The catalog's HTTP entry point: routing, parameter parsing and status
//! codes. Rules live in `catalog-core`.
//!
//! Routes (see `static/openapi.yaml`):
//! - public: `GET /api/products`, `GET /api/products/{id}`, `GET /api/categories`
//! - admins: `POST /api/products`, `PUT|DELETE /api/products/{id}`,
//!   `PUT /api/products/{id}/inventory`, `POST /api/products/{id}/images/uploads`,
//!   `POST /api/products/{id}/images`, `PUT|DELETE /api/products/{id}/images/{image_id}`,
//!   `GET /api/catalog/images/unused`, `POST /api/catalog/images/unused/forget`,
//!   `POST /api/categories`,
//!   `PUT|DELETE /api/categories/{id}`, and stock holds under
//!   `/api/inventory/reservations`
//! - `GET /api/catalog/health`

mod cache;
mod errors;
mod images;
mod manage;
mod reads;
mod reservations;

use catalog_core::schema;
use http_kit::{ApiError, Ctx, HandlerResult, Service};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;
use storage::Db;

const SERVICE: Service = Service { name: "catalog" };

#[http_component]
fn handle(req: IncomingRequest) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, |ctx| {
        let result = route(ctx);
        // Every successful write makes earlier cached public reads stale; so
        // may a write that failed with a 5xx (a commit that landed though
        // its answer was lost; found in review), while a 4xx changed nothing.
        let may_have_written = match &result {
            Ok(r) => r.status < 400,
            Err(e) => e.status >= 500,
        };
        if ctx.method != "GET" && may_have_written {
            cache::invalidate();
        }
        result
    }))
}

fn route(ctx: &Ctx) -> HandlerResult {
    let m = ctx.method.as_str();
    match (m, ctx.segments().as_slice()) {
        ("GET", ["api", "products"]) => reads::list_products(ctx),
        ("POST", ["api", "products"]) => manage::create_product(ctx),
        (_, ["api", "products"]) => Err(ApiError::method_not_allowed(&["GET", "HEAD", "POST"])),
        ("GET", ["api", "products", id]) => reads::get_product(ctx, id),
        ("PUT", ["api", "products", id]) => manage::update_product(ctx, id),
        ("DELETE", ["api", "products", id]) => manage::delete_product(ctx, id),
        (_, ["api", "products", _]) => Err(ApiError::method_not_allowed(&["GET", "HEAD", "PUT", "DELETE"])),
        ("PUT", ["api", "products", id, "inventory"]) => manage::set_inventory(ctx, id),
        (_, ["api", "products", _, "inventory"]) => Err(ApiError::method_not_allowed(&["PUT"])),
        ("POST", ["api", "products", id, "images", "uploads"]) => images::issue_upload(ctx, id),
        (_, ["api", "products", _, "images", "uploads"]) => Err(ApiError::method_not_allowed(&["POST"])),
        ("POST", ["api", "products", id, "images"]) => images::attach(ctx, id),
        (_, ["api", "products", _, "images"]) => Err(ApiError::method_not_allowed(&["POST"])),
        ("PUT", ["api", "products", id, "images", image]) => images::change(ctx, id, image),
        ("DELETE", ["api", "products", id, "images", image]) => images::remove(ctx, id, image),
        (_, ["api", "products", _, "images", _]) => Err(ApiError::method_not_allowed(&["PUT", "DELETE"])),
        ("GET", ["api", "categories"]) => reads::list_categories(ctx),
        ("POST", ["api", "categories"]) => manage::create_category(ctx),
        (_, ["api", "categories"]) => Err(ApiError::method_not_allowed(&["GET", "HEAD", "POST"])),
        ("PUT", ["api", "categories", id]) => manage::update_category(ctx, id),
        ("DELETE", ["api", "categories", id]) => manage::delete_category(ctx, id),
        (_, ["api", "categories", _]) => Err(ApiError::method_not_allowed(&["PUT", "DELETE"])),
        ("POST", ["api", "inventory", "reservations"]) => reservations::reserve(ctx),
        ("GET", ["api", "inventory", "reservations", order]) => reservations::get(ctx, order),
        ("POST", ["api", "inventory", "reservations", order, "commit"]) => reservations::commit(ctx, order),
        ("POST", ["api", "inventory", "reservations", order, "release"]) => reservations::release(ctx, order),
        (_, ["api", "inventory", "reservations"] | ["api", "inventory", "reservations", _, "commit" | "release"]) => Err(ApiError::method_not_allowed(&["POST"])),
        (_, ["api", "inventory", "reservations", _]) => Err(ApiError::method_not_allowed(&["GET", "HEAD"])),
        (_, ["api", "inventory", ..]) => Err(ApiError::no_route(&ctx.path)),
        (_, ["api", "catalog", "health"]) => health(ctx),
        ("GET", ["api", "catalog", "images", "unused"]) => images::unused(ctx),
        (_, ["api", "catalog", "images", "unused"]) => Err(ApiError::method_not_allowed(&["GET", "HEAD"])),
        ("POST", ["api", "catalog", "images", "unused", "forget"]) => images::forget(ctx),
        (_, ["api", "catalog", "images", "unused", "forget"]) => Err(ApiError::method_not_allowed(&["POST"])),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}

/// The catalog database with its schema current.
fn open() -> Result<impl Db, ApiError> {
    Ok(catalog_core::open_database()?)
}

fn health(ctx: &Ctx) -> HandlerResult {
    let database = (|| {
        let db = catalog_core::open_database()?;
        storage::migrations::status(&db, schema::MIGRATION_SET.for_dialect(storage::Db::dialect(&db)))
    })();
    http_kit::health::report(ctx, SERVICE.name, vec![http_kit::health::database_check(catalog_core::DATABASE_LABEL, database)])
}
