//! Product image uploads (admins): a presigned `PUT` URL to object storage,
//! then attaching the uploaded object to the product, changing its alt
//! text or position, and removing it. Rules live in `catalog_core::images`.

use crate::manage::product_id;
use crate::{errors, open};
use catalog_core::images::{self, AttachRequest, ImageChange, StorageSettings, UploadRequest};
use http_kit::{db_error, ApiError, Ctx, HandlerResult, Pagination, Reply};
use serde::Deserialize;
use serde_json::json;

/// The object storage settings, or 503 `image_storage_not_configured`.
fn storage() -> Result<StorageSettings, ApiError> {
    let get = |name: &str| spin_sdk::variables::get(name).unwrap_or_default();
    match StorageSettings::load(&get) {
        Ok(Some(settings)) => Ok(settings),
        Ok(None) => Err(ApiError::unavailable(
            "image_storage_not_configured",
            "image uploads are not configured on this server (no object_storage_* variables)",
        )),
        Err(problems) => Err(ApiError::unavailable(
            "image_storage_not_configured",
            "image uploads are misconfigured on this server; /health lists the problems",
        )
        .with_internal(problems.join("; "))),
    }
}

/// `POST /api/products/{id}/images/uploads`.
pub fn issue_upload(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    ctx.admin()?;
    let id = product_id(raw_id)?;
    let request: UploadRequest = ctx.json()?;
    let settings = storage()?;
    let db = open()?;
    let image_id = http_kit::ids::uuid_v4()?;
    let upload = images::issue_upload(&db, &settings, &id, &image_id, &request, clock::unix_now()).map_err(errors::admin)?;
    Ok(Reply::created(&upload).with_header("cache-control", "no-store"))
}

/// `POST /api/products/{id}/images`.
pub fn attach(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    ctx.admin()?;
    let id = product_id(raw_id)?;
    let request: AttachRequest = ctx.json()?;
    let settings = storage()?;
    let db = open()?;
    let product = images::attach(&db, &settings, &id, &request, clock::unix_now()).map_err(errors::admin)?;
    Ok(Reply::ok(&product.for_admin()))
}

/// `PUT /api/products/{id}/images/{image_id}`.
pub fn change(ctx: &Ctx, raw_id: &str, image_id: &str) -> HandlerResult {
    ctx.admin()?;
    let id = product_id(raw_id)?;
    let change: ImageChange = ctx.json()?;
    let db = open()?;
    let product = images::change(&db, &id, image_id, &change, clock::unix_now()).map_err(errors::admin)?;
    Ok(Reply::ok(&product.for_admin()))
}

/// `DELETE /api/products/{id}/images/{image_id}`.
pub fn remove(ctx: &Ctx, raw_id: &str, image_id: &str) -> HandlerResult {
    ctx.admin()?;
    let id = product_id(raw_id)?;
    let db = open()?;
    let product = images::remove(&db, &id, image_id, clock::unix_now()).map_err(errors::admin)?;
    Ok(Reply::ok(&product.for_admin()))
}

/// `GET /api/catalog/images/unused` (admins): objects the shop issued an
/// upload for that no product shows and that nothing writes any more, for
/// an operator to remove from the bucket (see [`forget`]), oldest first.
pub fn unused(ctx: &Ctx) -> HandlerResult {
    ctx.admin()?;
    let page = Pagination::from_query(&ctx.query)?;
    let db = open()?;
    let (objects, total) = images::unused(&db, clock::unix_now(), page.limit, page.offset()).map_err(db_error)?;
    Ok(Reply::ok(&json!({ "objects": objects, "page": page.page, "limit": page.limit, "total": total })).with_header("cache-control", "no-store"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgetBody {
    keys: Vec<String>,
}

/// The most keys one `forget` takes.
const MAX_FORGET: usize = 100;

/// `POST /api/catalog/images/unused/forget {"keys": [...]}` (admins): the
/// shop forgets these unused objects, so none can be attached again, and
/// answers the keys it forgot: exactly those may now be deleted from the
/// bucket (a key attached meanwhile, or not unused, is left out).
pub fn forget(ctx: &Ctx) -> HandlerResult {
    ctx.admin()?;
    let body: ForgetBody = ctx.json()?;
    if body.keys.is_empty() || body.keys.len() > MAX_FORGET {
        return Err(ApiError::validation([("keys".to_string(), json!(format!("must list 1 to {MAX_FORGET} keys")))].into_iter().collect()));
    }
    let db = open()?;
    let forgotten = images::forget_unused(&db, &body.keys, clock::unix_now()).map_err(db_error)?;
    Ok(Reply::ok(&json!({ "forgotten": forgotten })))
}
