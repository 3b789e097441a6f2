//! Product image uploads (admins): a presigned `PUT` URL to object storage,
//! then attaching the uploaded object to the product, changing its alt
//! text or position, and removing it. Rules live in `catalog_core::images`.

use crate::manage::product_id;
use crate::{errors, open};
use catalog_core::images::{self, AttachRequest, ImageChange, StorageSettings, UploadRequest};
use http_kit::{ApiError, Ctx, HandlerResult, Reply};

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
