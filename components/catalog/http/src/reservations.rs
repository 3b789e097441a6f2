//! Stock holds over HTTP, for admins (phone orders, manual holds, and
//! operations): the same reserve / commit / release rules that checkout uses
//! through the `shop:catalog/inventory` contract.

use crate::{errors, open};
use catalog_core::domain::ProductId;
use catalog_core::inventory::{self, Line};
use http_kit::{ApiError, Ctx, HandlerResult, Reply};
use serde::Deserialize;
use text_input::FieldProblems;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineBody {
    product_id: String,
    quantity: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReserveBody {
    order_id: String,
    lines: Vec<LineBody>,
    ttl_seconds: u32,
}

fn order_id(raw: &str) -> Result<String, ApiError> {
    inventory::parse_order_id(raw).map_err(|e| ApiError::invalid_parameter("order_id", e))
}

pub fn reserve(ctx: &Ctx) -> HandlerResult {
    ctx.admin()?;
    let body: ReserveBody = ctx.json()?;
    let mut problems = FieldProblems::default();
    let order = problems.check("order_id", inventory::parse_order_id(&body.order_id));
    let lines: Vec<Line> = body
        .lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            problems
                .check(&format!("lines[{i}].product_id"), ProductId::parse(&l.product_id).map_err(|e| e.to_string()))
                .map(|product_id| Line { product_id, quantity: l.quantity })
        })
        .collect();
    problems.finish().map_err(ApiError::validation)?;
    let order = order.ok_or_else(|| ApiError::internal("validated order id missing"))?;
    let db = open()?;
    let r = inventory::reserve(&db, &order, &lines, body.ttl_seconds, clock::unix_now()).map_err(errors::reserve)?;
    Ok(Reply::created(&r).with_header("location", format!("/api/inventory/reservations/{order}")))
}

pub fn get(ctx: &Ctx, raw: &str) -> HandlerResult {
    ctx.admin()?;
    let order = order_id(raw)?;
    let db = open()?;
    let r = inventory::get(&db, &order, clock::unix_now())?.ok_or_else(|| ApiError::not_found("reservation"))?;
    Ok(Reply::ok(&r).with_header("cache-control", "no-store"))
}

pub fn commit(ctx: &Ctx, raw: &str) -> HandlerResult {
    ctx.admin()?;
    let order = order_id(raw)?;
    let db = open()?;
    Ok(Reply::ok(&inventory::commit(&db, &order, clock::unix_now()).map_err(errors::inventory)?))
}

pub fn release(ctx: &Ctx, raw: &str) -> HandlerResult {
    ctx.admin()?;
    let order = order_id(raw)?;
    let db = open()?;
    Ok(Reply::ok(&inventory::release(&db, &order, clock::unix_now()).map_err(errors::inventory)?))
}
