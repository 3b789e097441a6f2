//! `GET/POST /api/users/addresses`, `GET/PUT/DELETE /api/users/addresses/{id}`:
//! the signed-in user's address book (see `users_core::addresses`).

use crate::handlers::in_live_session;
use http_kit::{db_error, ApiError, Ctx, HandlerResult, Reply};
use postal::AddressInput;
use serde::Deserialize;
use serde_json::json;
use text_input::FieldProblems;
use users_core::addresses::{self, Entry, Refused, MAX_PER_USER};
use users_core::schema;

fn open() -> Result<storage::ServiceDb, ApiError> {
    schema::open_database().map_err(db_error)
}

/// An entry as clients send it: the address fields, an optional label and
/// whether it is the default shipping address.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    label: Option<String>,
    default_shipping: Option<bool>,
    name: Option<String>,
    line1: Option<String>,
    line2: Option<String>,
    city: Option<String>,
    region: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
}

struct Parsed {
    label: Option<String>,
    address: postal::Address,
    default_shipping: Option<bool>,
}

fn parse(ctx: &Ctx) -> Result<Parsed, ApiError> {
    let b: EntryBody = ctx.json()?;
    let input = AddressInput { name: b.name, line1: b.line1, line2: b.line2, city: b.city, region: b.region, postal_code: b.postal_code, country: b.country };
    let mut problems = FieldProblems::default();
    let label = match b.label.as_deref().map(str::trim) {
        None | Some("") => Some(None),
        Some(l) => problems.check("label", text_input::bounded(l, 50)).map(Some),
    };
    let address = input.parse(&mut problems, "");
    problems.finish().map_err(ApiError::validation)?;
    match (label, address) {
        (Some(label), Some(address)) => Ok(Parsed { label, address, default_shipping: b.default_shipping }),
        _ => Err(ApiError::internal("validated address missing")),
    }
}

fn entry_reply(status: u16, e: &Entry) -> Reply {
    Reply::json(status, &json!({ "address": e })).with_header("cache-control", "no-store")
}

fn not_found() -> ApiError {
    ApiError::not_found("address")
}

pub fn list(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    let entries = addresses::list(&db, &caller.user_id).map_err(db_error)?;
    Ok(Reply::ok(&json!({ "addresses": entries, "limit": MAX_PER_USER })).with_header("cache-control", "no-store"))
}

pub fn create(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let p = parse(ctx)?;
    let id = http_kit::ids::uuid_v4()?;
    let now = clock::now_rfc3339();
    let db = open()?;
    let added = in_live_session(&db, &caller, |tx, _| {
        addresses::add(tx, &caller.user_id, &id, p.label.as_deref(), &p.address, p.default_shipping.unwrap_or(false), &now).map_err(db_error)
    })?;
    match added {
        Ok(entry) => Ok(entry_reply(201, &entry).with_header("location", format!("/api/users/addresses/{}", entry.id))),
        Err(Refused::Full) => Err(ApiError::new(
            409,
            "address_book_full",
            format!("an address book holds at most {MAX_PER_USER} addresses; delete one first"),
        )),
        Err(Refused::AccountGone) => Err(ApiError::not_found("user")),
    }
}

pub fn get(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    let entry = addresses::get(&db, &caller.user_id, id).map_err(db_error)?.ok_or_else(not_found)?;
    Ok(entry_reply(200, &entry))
}

pub fn replace(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.caller()?;
    let p = parse(ctx)?;
    let now = clock::now_rfc3339();
    let db = open()?;
    let entry = in_live_session(&db, &caller, |tx, _| addresses::replace(tx, &caller.user_id, id, p.label.as_deref(), &p.address, p.default_shipping, &now).map_err(db_error))?
        .ok_or_else(not_found)?;
    Ok(entry_reply(200, &entry))
}

pub fn delete(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    if !addresses::remove(&db, &caller.user_id, id).map_err(db_error)? {
        return Err(not_found());
    }
    Ok(Reply::no_content())
}
