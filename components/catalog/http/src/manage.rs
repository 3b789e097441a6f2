//! Admin catalog management. Every handler checks the admin role first
//! (401 without a token, 403 for customers) and answers with the stored
//! resource in its admin view.

use crate::{errors, open};
use catalog_core::admin::{self, CategoryInput, Deletion, ProductInput};
use catalog_core::domain::{ids::parse_uuid, ProductId};
use http_kit::{ApiError, Ctx, HandlerResult, Reply};
use serde::Deserialize;

/// The `{id}` path segment as a product id, or 400.
pub(crate) fn product_id(raw: &str) -> Result<ProductId, ApiError> {
    ProductId::parse(raw).map_err(|e| ApiError::invalid_parameter("id", e.to_string()))
}

fn category_id(raw: &str) -> Result<String, ApiError> {
    parse_uuid(raw).map_err(|e| ApiError::invalid_parameter("id", e.to_string()))
}

pub fn create_product(ctx: &Ctx) -> HandlerResult {
    ctx.admin()?;
    let input: ProductInput = ctx.json()?;
    let id = ProductId::parse(&http_kit::ids::uuid_v4()?).map_err(|_| ApiError::internal("generated id is not a UUID"))?;
    let db = open()?;
    let product = admin::create_product(&db, &id, &input, clock::unix_now()).map_err(errors::admin)?;
    Ok(Reply::created(&product.for_admin()).with_header("location", format!("/api/products/{id}")))
}

pub fn update_product(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    ctx.admin()?;
    let id = product_id(raw_id)?;
    let input: ProductInput = ctx.json()?;
    let db = open()?;
    let product = admin::update_product(&db, &id, &input, clock::unix_now()).map_err(errors::admin)?;
    Ok(Reply::ok(&product.for_admin()))
}

pub fn delete_product(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    ctx.admin()?;
    let id = product_id(raw_id)?;
    let db = open()?;
    match admin::delete_product(&db, &id, clock::unix_now()).map_err(errors::admin)? {
        Deletion::Deleted => Ok(Reply::no_content()),
        // Kept for order history: answer with what is stored now.
        Deletion::Deactivated(product) => Ok(Reply::ok(&product.for_admin())),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryBody {
    stock_on_hand: i64,
    /// The stock on hand the change is based on (optional precondition).
    expected_on_hand: Option<i64>,
}

pub fn set_inventory(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    ctx.admin()?;
    let id = product_id(raw_id)?;
    let body: InventoryBody = ctx.json()?;
    let db = open()?;
    let product = admin::set_stock(&db, &id, body.stock_on_hand, body.expected_on_hand, clock::unix_now()).map_err(errors::admin)?;
    Ok(Reply::ok(&product.for_admin()))
}

pub fn create_category(ctx: &Ctx) -> HandlerResult {
    ctx.admin()?;
    let input: CategoryInput = ctx.json()?;
    let id = http_kit::ids::uuid_v4()?;
    let db = open()?;
    let category = admin::save_category(&db, &id, &input, true).map_err(errors::admin)?;
    Ok(Reply::created(&category).with_header("location", "/api/categories"))
}

pub fn update_category(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    ctx.admin()?;
    let id = category_id(raw_id)?;
    let input: CategoryInput = ctx.json()?;
    let db = open()?;
    Ok(Reply::ok(&admin::save_category(&db, &id, &input, false).map_err(errors::admin)?))
}

pub fn delete_category(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    ctx.admin()?;
    let id = category_id(raw_id)?;
    let db = open()?;
    admin::delete_category(&db, &id).map_err(errors::admin)?;
    Ok(Reply::no_content())
}
