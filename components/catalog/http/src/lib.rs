//! The catalog's HTTP entry point: routing, parameter parsing and status
//! codes. Rules live in `catalog-core`.
//!
//! Routes (see `static/openapi.yaml`):
//! - `GET /api/products` — filtered, sorted, paginated listing
//! - `GET /api/products/{id}` — one active product
//! - `GET /api/categories` — categories with product counts
//! - `GET /api/catalog/health` — database reachable and schema current

use catalog_core::domain::{listing, PriceRange, ProductFilter, ProductId, SearchText, Sort};
use catalog_core::{repository, schema};
use http_kit::conditional::cacheable;
use http_kit::{db_error, ApiError, Ctx, HandlerResult, Pagination, Reply, Service};
use money::Currency;
use serde_json::json;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use storage::Db;

const SERVICE: Service = Service { name: "catalog" };

/// Public catalog reads may be cached briefly by browsers and CDNs; the ETag
/// makes revalidation cheap after that.
const PUBLIC_CACHE: &str = "public, max-age=30";

#[http_component]
fn handle(req: Request) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    let get_only = |ctx: &Ctx, f: fn(&Ctx) -> HandlerResult| {
        if ctx.method == "GET" {
            f(ctx)
        } else {
            Err(ApiError::method_not_allowed(&["GET", "HEAD"]))
        }
    };
    match ctx.segments().as_slice() {
        ["api", "products"] => get_only(ctx, list_products),
        ["api", "products", id] => {
            let id = id.to_string();
            if ctx.method != "GET" {
                return Err(ApiError::method_not_allowed(&["GET", "HEAD"]));
            }
            get_product(ctx, &id)
        }
        ["api", "categories"] => get_only(ctx, list_categories),
        ["api", "catalog", "health"] => health(ctx),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}

fn open() -> Result<impl Db, ApiError> {
    catalog_core::open_database().map_err(db_error)
}

fn list_products(ctx: &Ctx) -> HandlerResult {
    let q = &ctx.query;
    let page = Pagination::from_query(q)?;
    let search = q
        .get("q")
        .map(SearchText::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_parameter("q", e))?;
    let category = q
        .get("category")
        .map(listing::parse_slug)
        .transpose()
        .map_err(|e| ApiError::invalid_parameter("category", e))?;
    let max_minor = i64::MAX / 2;
    let price = PriceRange::new(q.int("min_price", 0, max_minor)?, q.int("max_price", 0, max_minor)?)
        .map_err(|e| ApiError::invalid_parameter("min_price", e))?;
    let currency = q
        .get("currency")
        .map(Currency::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_parameter("currency", e.to_string()))?;
    let sort = match q.one_of("sort", Sort::NAMES)? {
        None => ProductFilter::default_sort(search.as_ref()),
        Some("relevance") if search.is_none() => {
            return Err(ApiError::invalid_parameter("sort", "relevance needs a search text in `q`"))
        }
        Some(name) => Sort::from_name(name).unwrap_or(Sort::Newest),
    };
    let filter = ProductFilter {
        category,
        search,
        price,
        currency,
        in_stock: q.bool("in_stock")?,
        sort,
        limit: page.limit,
        offset: page.offset(),
    };
    let db = open()?;
    let result = repository::list_products(&db, &filter).map_err(db_error)?;
    let body = json!({
        "products": result.products,
        "page": page.page,
        "limit": page.limit,
        "total": result.total,
    });
    Ok(cacheable(ctx, Reply::ok(&body), PUBLIC_CACHE))
}

fn get_product(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    let id = ProductId::parse(raw_id).map_err(|e| ApiError::invalid_parameter("id", e.to_string()))?;
    let db = open()?;
    let product = repository::get_active_product(&db, &id)
        .map_err(db_error)?
        .ok_or_else(|| ApiError::not_found("product"))?;
    Ok(cacheable(ctx, Reply::ok(&product), PUBLIC_CACHE))
}

fn list_categories(ctx: &Ctx) -> HandlerResult {
    let db = open()?;
    let categories = repository::list_categories(&db).map_err(db_error)?;
    Ok(cacheable(ctx, Reply::ok(&json!({ "categories": categories })), PUBLIC_CACHE))
}

fn health(ctx: &Ctx) -> HandlerResult {
    let database = (|| {
        let db = catalog_core::open_database()?;
        storage::migrations::status(&db, schema::MIGRATIONS)
    })();
    http_kit::health::report(ctx, SERVICE.name, vec![http_kit::health::database_check(catalog_core::DATABASE_LABEL, database)])
}
