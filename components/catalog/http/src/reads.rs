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

/// The listing's filter, every parameter checked; `None` when the filter
/// can match nothing although it is well-formed: a code that is no ISO 4217
/// currency (`XYZ`), or a price range whose minimum is above its maximum.
fn filter_from_query(ctx: &Ctx, page: &Pagination) -> Result<Option<ProductFilter>, ApiError> {
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
    let (lo, hi) = (q.int("min_price", 0, max_minor)?, q.int("max_price", 0, max_minor)?);
    let inverted = matches!((lo, hi), (Some(lo), Some(hi)) if lo > hi);
    let price = if inverted { PriceRange::default() } else { PriceRange::new(lo, hi).map_err(|e| ApiError::invalid_parameter("min_price", e))? };
    let (currency, unknown_currency) = match q.get("currency").map(str::trim) {
        None => (None, false),
        Some(raw) => match Currency::parse(raw) {
            Ok(c) => (Some(c), false),
            Err(_) if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_alphabetic()) => (None, true),
            Err(e) => return Err(ApiError::invalid_parameter("currency", e.to_string())),
        },
    };
    let sort = match q.one_of("sort", Sort::NAMES)? {
        None => ProductFilter::default_sort(search.as_ref()),
        // Without a search text every product is as relevant as the next:
        // newest first, as by default.
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
    Ok((!(inverted || unknown_currency)).then_some(filter))
}

pub fn list_products(ctx: &Ctx) -> HandlerResult {
    let page = Pagination::from_query(&ctx.query)?;
    let filter = filter_from_query(ctx, &page)?;
    let include_inactive = ctx.query.bool("include_inactive")?.unwrap_or(false);
    let admin = is_admin(ctx)?;
    if include_inactive && !admin {
        return Err(ApiError::new(403, "forbidden", "include_inactive is for admins"));
    }
    // A filter nothing can match gives an empty listing.
    let Some(filter) = filter else {
        return Ok(Reply::ok(&json!({ "products": [], "page": page.page, "limit": page.limit, "total": 0 })));
    };
    if admin {
        let db = open()?;
        let result = repository::list_products(&db, &filter, include_inactive, clock::unix_now())?;
        let products: Vec<_> = result.products.into_iter().map(|p| p.for_admin()).collect();
        let body = json!({ "products": products, "page": page.page, "limit": page.limit, "total": result.total });
        return Ok(cacheable(ctx, Reply::ok(&body), PRIVATE_CACHE));
    }
    cache::public_read(ctx, format!("products|{filter:?}|{}", page.page), PUBLIC_CACHE, || {
        let db = open()?;
        let result = repository::list_products(&db, &filter, false, clock::unix_now())?;
        Ok(Reply::ok(&json!({ "products": result.products, "page": page.page, "limit": page.limit, "total": result.total })))
    })
}

pub fn get_product(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    let id = ProductId::parse(raw_id).map_err(|e| ApiError::invalid_parameter("id", e.to_string()))?;
    let admin = is_admin(ctx)?;
    let read = |admin: bool| -> Result<_, ApiError> {
        let db = open()?;
        repository::get_product(&db, &id, admin, clock::unix_now())?.ok_or_else(|| ApiError::not_found("product"))
    };
    if admin {
        return Ok(cacheable(ctx, Reply::ok(&read(true)?.for_admin()), PRIVATE_CACHE));
    }
    cache::public_read(ctx, format!("product|{id}"), PUBLIC_CACHE, || Ok(Reply::ok(&read(false)?)))
}

pub fn list_categories(ctx: &Ctx) -> HandlerResult {
    cache::public_read(ctx, "categories".into(), PUBLIC_CACHE, || {
        let db = open()?;
        Ok(Reply::ok(&json!({ "categories": repository::list_categories(&db)? })))
    })
}
