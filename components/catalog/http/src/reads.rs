//! Public catalog reads. Admins (by token) additionally see inactive
//! products and the stock breakdown; their answers are never cached publicly.

use crate::{cache, open};
use catalog_core::domain::{listing, PriceRange, ProductFilter, ProductId, SearchText, Sort};
use catalog_core::repository;
use http_kit::conditional::cacheable;
use http_kit::{ApiError, Ctx, HandlerResult, Pagination, Reply};
use money::Currency;
use serde_json::json;

/// Public catalog reads may be cached briefly by browsers and CDNs; the ETag
/// makes revalidation cheap after that.
const PUBLIC_CACHE: &str = "public, max-age=30";
/// Admin views carry stock details and depend on the token.
const PRIVATE_CACHE: &str = "private, no-store";

/// True when the request carries a valid admin token; an invalid token is a
/// 401 even on a public route, so a client learns its token is bad.
fn is_admin(ctx: &Ctx) -> Result<bool, ApiError> {
    if ctx.header("authorization").is_none() {
        return Ok(false);
    }
    Ok(ctx.caller()?.is_admin())
}

fn filter_from_query(ctx: &Ctx, page: &Pagination) -> Result<ProductFilter, ApiError> {
    let q = &ctx.query;
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
    let max_minor = catalog_core::admin::MAX_PRICE_MINOR;
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
    Ok(ProductFilter {
        category,
        search,
        price,
        currency,
        in_stock: q.bool("in_stock")?,
        sort,
        limit: page.limit,
        offset: page.offset(),
    })
}

pub fn list_products(ctx: &Ctx) -> HandlerResult {
    let page = Pagination::from_query(&ctx.query)?;
    let filter = filter_from_query(ctx, &page)?;
    let include_inactive = ctx.query.bool("include_inactive")?.unwrap_or(false);
    let admin = is_admin(ctx)?;
    if include_inactive && !admin {
        return Err(ApiError::new(403, "forbidden", "include_inactive is for admins"));
    }
    let cached = if admin { None } else { cache::lookup(ctx, format!("products|{filter:?}|{}", page.page)) };
    let miss = match cached {
        Some(Ok(body)) => return Ok(public(ctx, body)),
        Some(Err(miss)) => Some(miss),
        None => None,
    };
    let db = open()?;
    let result = repository::list_products(&db, &filter, include_inactive, clock::unix_now())?;
    let (products, cache) = if admin {
        (json!(result.products.into_iter().map(|p| p.for_admin()).collect::<Vec<_>>()), PRIVATE_CACHE)
    } else {
        (json!(result.products), PUBLIC_CACHE)
    };
    let body = json!({ "products": products, "page": page.page, "limit": page.limit, "total": result.total });
    let reply = Reply::ok(&body);
    if let Some(miss) = miss {
        miss.store(&reply.body);
    }
    Ok(cacheable(ctx, reply, cache))
}

/// A public answer from the cache, with the same headers as a fresh one.
fn public(ctx: &Ctx, body: Vec<u8>) -> Reply {
    cacheable(ctx, Reply::bytes(200, "application/json", body), PUBLIC_CACHE)
}

pub fn get_product(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    let id = ProductId::parse(raw_id).map_err(|e| ApiError::invalid_parameter("id", e.to_string()))?;
    let admin = is_admin(ctx)?;
    let miss = match if admin { None } else { cache::lookup(ctx, format!("product|{id}")) } {
        Some(Ok(body)) => return Ok(public(ctx, body)),
        Some(Err(miss)) => Some(miss),
        None => None,
    };
    let db = open()?;
    let product = repository::get_product(&db, &id, admin, clock::unix_now())?.ok_or_else(|| ApiError::not_found("product"))?;
    if admin {
        Ok(cacheable(ctx, Reply::ok(&product.for_admin()), PRIVATE_CACHE))
    } else {
        let reply = Reply::ok(&product);
        if let Some(miss) = miss {
            miss.store(&reply.body);
        }
        Ok(cacheable(ctx, reply, PUBLIC_CACHE))
    }
}

pub fn list_categories(ctx: &Ctx) -> HandlerResult {
    let miss = match cache::lookup(ctx, "categories".into()) {
        Some(Ok(body)) => return Ok(public(ctx, body)),
        Some(Err(miss)) => Some(miss),
        None => None,
    };
    let db = open()?;
    let categories = repository::list_categories(&db)?;
    let reply = Reply::ok(&json!({ "categories": categories }));
    if let Some(miss) = miss {
        miss.store(&reply.body);
    }
    Ok(cacheable(ctx, reply, PUBLIC_CACHE))
}
