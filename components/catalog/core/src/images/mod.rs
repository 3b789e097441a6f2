//! Product images uploaded by admins straight to S3-compatible object
//! storage (AWS S3, Cloudflare R2, MinIO): the image bytes never pass
//! through a Spin component.
//!
//! 1. [`issue_upload`]: the admin declares the content type (JPEG, PNG or
//!    WebP) and the exact size (at most `image_upload_max_bytes`); the
//!    catalog records the upload and answers a presigned `PUT` URL whose
//!    signature covers both (see [`sigv4`]).
//! 2. The admin's browser `PUT`s the bytes to that URL.
//! 3. [`attach`]: the admin attaches the uploaded object to the product
//!    with alt text and a position. Only keys the catalog issued for that
//!    product can be attached.
//!
//! A product's images are kept in order on the product row (`images`, a
//! JSON list), so reading a product or a page of products costs no extra
//! statement.

pub mod sigv4;

use crate::admin::{AdminError, MAX_IMAGES};
use crate::domain::ProductId;
use crate::repository;
use serde::{Deserialize, Serialize};
use storage::{transaction, Db, DbError};
use text_input::FieldProblems;

/// Longest alt text, in characters.
pub const MAX_ALT_CHARS: usize = 300;
/// Default and ceiling of `image_upload_max_bytes`.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const MAX_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Default lifetime of an upload URL (seconds), and the allowed range.
pub const DEFAULT_URL_TTL_SECS: u32 = 900;
pub const URL_TTL_RANGE: std::ops::RangeInclusive<i64> = 60..=3600;

/// An image attached to a product, as product JSON lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductImage {
    /// The image's id (also the last part of its key).
    pub id: String,
    /// The object key in the bucket.
    pub key: String,
    /// Where browsers load it: `object_storage_public_url` + `/` + key, as
    /// configured when the image was attached.
    pub url: String,
    /// Alt text; empty for a purely decorative image.
    pub alt: String,
}

/// The image types an upload may declare, with the file extension its key gets.
pub fn extension_for(content_type: &str) -> Option<&'static str> {
    match content_type {
        "image/jpeg" => Some("jpg"),
        "image/png" => Some("png"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

/// Where uploads go, from the Spin variables `object_storage_*` and
/// `image_upload_*`. Complete or absent: see [`StorageSettings::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// `scheme://host[:port]`, no path (path-style addressing).
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Base of the images' public URLs (no trailing `/`).
    pub public_url: String,
    pub max_bytes: u64,
    pub url_ttl_secs: u32,
}

/// The variables that must all be set for uploads to work.
pub const REQUIRED_VARIABLES: &[&str] = &[
    "object_storage_endpoint",
    "object_storage_bucket",
    "object_storage_access_key_id",
    "object_storage_secret_access_key",
    "object_storage_public_url",
];

impl StorageSettings {
    /// `Ok(None)` when no storage is configured (every required variable
    /// empty: uploads answer 503); `Err` with the problems when it is
    /// configured wrongly (also reported by `/health`).
    pub fn load(get: &dyn Fn(&str) -> String) -> Result<Option<StorageSettings>, Vec<String>> {
        let value = |name: &str| get(name).trim().to_string();
        let set: Vec<&str> = REQUIRED_VARIABLES.iter().copied().filter(|n| !value(n).is_empty()).collect();
        let mut problems = Vec::new();
        if set.is_empty() {
            // Still check the tunables, so a typo shows before storage is set up.
            let _ = limits(get, &mut problems);
            return if problems.is_empty() { Ok(None) } else { Err(problems) };
        }
        for missing in REQUIRED_VARIABLES.iter().filter(|n| !set.contains(n)) {
            problems.push(format!("{missing} is empty, but other object_storage_* variables are set; image uploads need all of {}", REQUIRED_VARIABLES.join(", ")));
        }
        let endpoint = value("object_storage_endpoint").trim_end_matches('/').to_string();
        let after_scheme = endpoint.strip_prefix("https://").or_else(|| endpoint.strip_prefix("http://"));
        if !endpoint.is_empty() && !after_scheme.is_some_and(|h| !h.is_empty() && !h.contains('/') && !h.contains('?')) {
            problems.push(format!("object_storage_endpoint is {endpoint:?}; it must be http(s)://host[:port] with no path (the bucket goes in object_storage_bucket)"));
        }
        let bucket = value("object_storage_bucket");
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket.is_empty() && !bucket_ok {
            problems.push(format!("object_storage_bucket is {bucket:?}; it must be 3-63 lower-case letters, digits, '-' or '.'"));
        }
        let region = match value("object_storage_region") {
            r if r.is_empty() => "us-east-1".to_string(),
            r => r,
        };
        if !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            problems.push(format!("object_storage_region is {region:?}; it must be a region name such as eu-central-1 (R2: auto)"));
        }
        let public_url = value("object_storage_public_url").trim_end_matches('/').to_string();
        if !public_url.is_empty() && !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
            problems.push(format!("object_storage_public_url is {public_url:?}; it must be an http:// or https:// URL"));
        }
        let (max_bytes, url_ttl_secs) = limits(get, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Some(StorageSettings {
            endpoint,
            bucket,
            region,
            access_key_id: value("object_storage_access_key_id"),
            secret_access_key: value("object_storage_secret_access_key"),
            public_url,
            max_bytes,
            url_ttl_secs,
        }))
    }
}

/// `image_upload_max_bytes` and `image_upload_url_ttl_secs`, defaults when empty.
fn limits(get: &dyn Fn(&str) -> String, problems: &mut Vec<String>) -> (u64, u32) {
    let mut p = http_kit::settings::Problems::default();
    p.whole_number(get, "image_upload_max_bytes", 1..=MAX_MAX_BYTES as i64, "bytes");
    p.whole_number(get, "image_upload_url_ttl_secs", URL_TTL_RANGE, "seconds");
    problems.extend(p.0);
    let max = get("image_upload_max_bytes").trim().parse().unwrap_or(DEFAULT_MAX_BYTES);
    let ttl = get("image_upload_url_ttl_secs").trim().parse().unwrap_or(DEFAULT_URL_TTL_SECS);
    (max, ttl)
}

/// What an admin asks to upload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    pub content_type: String,
    pub content_length: i64,
}

/// A granted upload: where to `PUT`, with which headers, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upload {
    pub image_id: String,
    pub key: String,
    pub method: &'static str,
    pub upload_url: String,
    /// Headers the `PUT` must carry exactly as given (they are signed).
    pub headers: UploadHeaders,
    pub expires_at: String,
    /// Where the image will be served from once uploaded.
    pub url: String,
}

/// The signed headers of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadHeaders {
    #[serde(rename = "content-type")]
    pub content_type: String,
    #[serde(rename = "content-length")]
    pub content_length: String,
}

/// Issue a presigned upload for a new image of `product` and record it.
/// `image_id` is a fresh UUID from the caller.
pub fn issue_upload(
    db: &dyn Db,
    settings: &StorageSettings,
    product: &ProductId,
    image_id: &str,
    request: &UploadRequest,
    now: i64,
) -> Result<Upload, AdminError> {
    let mut p = FieldProblems::default();
    let content_type = request.content_type.trim().to_ascii_lowercase();
    let ext = p.check(
        "content_type",
        extension_for(&content_type).ok_or_else(|| "must be image/jpeg, image/png or image/webp".to_string()),
    );
    let max = settings.max_bytes;
    let length = p.check(
        "content_length",
        u64::try_from(request.content_length)
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| format!("must be the image's exact size in bytes, from 1 to {max}")),
    );
    p.finish().map_err(AdminError::Invalid)?;
    let (Some(ext), Some(content_length)) = (ext, length) else {
        return Err(AdminError::Storage(DbError::Other("validated upload incomplete".into())));
    };
    repository::get_product(db, product, true, now)?.ok_or(AdminError::NotFound("product"))?;
    let key = format!("products/{product}/{image_id}.{ext}");
    let expires = now + i64::from(settings.url_ttl_secs);
    db.execute(
        "INSERT INTO image_uploads (id, product_id, object_key, content_type, content_length, expires_at, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        &[
            image_id.into(),
            product.as_str().into(),
            key.as_str().into(),
            content_type.as_str().into(),
            (content_length as i64).into(),
            expires.into(),
            clock::format_rfc3339(now).into(),
        ],
    )?;
    let upload_url = sigv4::presign_put(&sigv4::PresignPut {
        endpoint: &settings.endpoint,
        bucket: &settings.bucket,
        key: &key,
        region: &settings.region,
        access_key_id: &settings.access_key_id,
        secret_access_key: &settings.secret_access_key,
        content_type: &content_type,
        content_length,
        now,
        expires_secs: settings.url_ttl_secs,
    });
    Ok(Upload {
        image_id: image_id.to_string(),
        url: format!("{}/{key}", settings.public_url),
        key,
        method: "PUT",
        upload_url,
        headers: UploadHeaders { content_type, content_length: content_length.to_string() },
        expires_at: clock::format_rfc3339(expires),
    })
}

/// Attach an uploaded object to its product.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    pub key: String,
    #[serde(default)]
    pub alt: String,
    /// 0-based place in the product's list; the end when absent.
    pub position: Option<i64>,
}

/// A change to an attached image: alt text and/or position.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageChange {
    pub alt: Option<String>,
    pub position: Option<i64>,
}

fn parse_alt(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        Ok(String::new())
    } else {
        text_input::bounded(raw, MAX_ALT_CHARS)
    }
}

/// A position from 0 to `len - 1` (`len` itself when inserting).
fn parse_position(raw: i64, len: usize) -> Result<usize, String> {
    usize::try_from(raw).ok().filter(|p| *p <= len).ok_or_else(|| format!("must be from 0 to {len}"))
}

/// The images stored on a product row, with the row locked for the rest of
/// the transaction (a portable `SELECT ... FOR UPDATE`): every change
/// writes the whole list back, so on Postgres two concurrent changes would
/// otherwise lose one, or pass the image limit together.
fn stored_images(db: &dyn Db, product: &ProductId) -> Result<Vec<ProductImage>, AdminError> {
    let rows = db.query("UPDATE products SET images = images WHERE id = ? RETURNING images", &[product.as_str().into()])?;
    let row = rows.first().ok_or(AdminError::NotFound("product"))?;
    Ok(parse_stored(&row.text("images")?)?)
}

/// Decode the `images` column.
pub fn parse_stored(json: &str) -> Result<Vec<ProductImage>, DbError> {
    serde_json::from_str(json).map_err(|e| DbError::Other(format!("products.images is not a list of images: {e}")))
}

fn store(db: &dyn Db, product: &ProductId, images: &[ProductImage], now: i64) -> Result<crate::domain::Product, AdminError> {
    let json = serde_json::to_string(images).map_err(|e| DbError::Other(e.to_string()))?;
    db.execute(
        "UPDATE products SET images = ?, updated_at = ? WHERE id = ?",
        &[json.into(), clock::format_rfc3339(now).into(), product.as_str().into()],
    )?;
    repository::get_product(db, product, true, now)?.ok_or(AdminError::NotFound("product"))
}

/// Record an uploaded object on its product, at `position` (default: last).
pub fn attach(
    db: &dyn Db,
    settings: &StorageSettings,
    product: &ProductId,
    request: &AttachRequest,
    now: i64,
) -> Result<crate::domain::Product, AdminError> {
    transaction(db, |tx| {
        let mut images = stored_images(tx, product)?;
        let mut p = FieldProblems::default();
        let alt = p.check("alt", parse_alt(&request.alt));
        let position = match request.position {
            Some(raw) => p.check("position", parse_position(raw, images.len())),
            None => Some(images.len()),
        };
        let key = request.key.trim();
        let upload = tx.query(
            "SELECT id FROM image_uploads WHERE object_key = ? AND product_id = ? AND forgotten_at IS NULL",
            &[key.into(), product.as_str().into()],
        )?;
        let image_id = match upload.first() {
            Some(row) => Some(row.text("id")?),
            None => {
                p.add("key", "is not an upload issued for this product");
                None
            }
        };
        if let Some(id) = &image_id {
            if images.iter().any(|i| &i.id == id) {
                p.add("key", "is already attached to this product");
            }
        }
        if images.len() >= MAX_IMAGES {
            p.add("key", &format!("a product has at most {MAX_IMAGES} images; remove one first"));
        }
        p.finish().map_err(AdminError::Invalid)?;
        let (Some(alt), Some(position), Some(id)) = (alt, position, image_id) else {
            return Err(AdminError::Storage(DbError::Other("validated attachment incomplete".into())));
        };
        let image = ProductImage { id, key: key.to_string(), url: format!("{}/{key}", settings.public_url), alt };
        images.insert(position, image);
        store(tx, product, &images, now)
    })
}

/// Change an attached image's alt text or move it to another position.
pub fn change(db: &dyn Db, product: &ProductId, image_id: &str, change: &ImageChange, now: i64) -> Result<crate::domain::Product, AdminError> {
    transaction(db, |tx| {
        let mut images = stored_images(tx, product)?;
        let at = images.iter().position(|i| i.id == image_id).ok_or(AdminError::NotFound("image"))?;
        let mut p = FieldProblems::default();
        let alt = change.alt.as_deref().map(|a| p.check("alt", parse_alt(a)));
        let to = change.position.map(|raw| p.check("position", parse_position(raw, images.len() - 1)));
        p.finish().map_err(AdminError::Invalid)?;
        let mut image = images.remove(at);
        if let Some(Some(alt)) = alt {
            image.alt = alt;
        }
        images.insert(to.flatten().unwrap_or(at), image);
        store(tx, product, &images, now)
    })
}

/// Take an image off its product. The object stays in the bucket, listed
/// among the unused ones ([`unused`]) for an operator to remove.
pub fn remove(db: &dyn Db, product: &ProductId, image_id: &str, now: i64) -> Result<crate::domain::Product, AdminError> {
    transaction(db, |tx| {
        let mut images = stored_images(tx, product)?;
        let at = images.iter().position(|i| i.id == image_id).ok_or(AdminError::NotFound("image"))?;
        images.remove(at);
        store(tx, product, &images, now)
    })
}

/// An object the shop issued an upload for that no product shows: never
/// attached, taken off its product, or of a product deleted for good, and
/// whose upload URL has expired, so nothing writes it any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnusedObject {
    pub key: String,
    pub product_id: String,
    pub content_type: String,
    pub content_length: i64,
    /// When its upload URL was issued (RFC 3339).
    pub issued_at: String,
}

/// Not shown by its product (gone, or its `images` list does not name the
/// key; keys hold no `LIKE` wildcard: `products/<uuid>/<uuid>.<ext>`), and
/// its upload URL expired before `?`.
const UNUSED: &str = "FROM image_uploads u LEFT JOIN products p ON p.id = u.product_id \
     WHERE u.expires_at < ? AND u.forgotten_at IS NULL AND (p.id IS NULL OR p.images NOT LIKE '%\"key\":\"' || u.object_key || '\"%')";

/// The unused objects ([`UnusedObject`]), oldest first, a page at a time,
/// with how many there are.
pub fn unused(db: &dyn Db, now: i64, limit: u32, offset: i64) -> Result<(Vec<UnusedObject>, i64), DbError> {
    let rows = db.query(
        &format!(
            "SELECT u.object_key, u.product_id, u.content_type, u.content_length, u.created_at, COUNT(*) OVER () AS total {UNUSED} \
             ORDER BY u.created_at, u.object_key LIMIT ? OFFSET ?"
        ),
        &[now.into(), i64::from(limit).into(), offset.into()],
    )?;
    let total = match rows.first() {
        Some(r) => r.int("total")?,
        None => db.query(&format!("SELECT COUNT(*) AS n {UNUSED}"), &[now.into()])?.first().map(|r| r.int("n")).transpose()?.unwrap_or(0),
    };
    let objects = rows
        .iter()
        .map(|r| {
            Ok(UnusedObject {
                key: r.text("object_key")?,
                product_id: r.text("product_id")?,
                content_type: r.text("content_type")?,
                content_length: r.int("content_length")?,
                issued_at: r.text("created_at")?,
            })
        })
        .collect::<Result<_, DbError>>()?;
    Ok((objects, total))
}

/// Forget these unused objects, so they can never be attached again, and
/// return the keys forgotten: those, and only those, may be deleted from
/// the bucket. A key that is attached (also one attached after it was
/// listed), that any product's `image_urls` names, whose upload URL is
/// still valid, or that the shop never issued is left out. A key forgotten
/// before is answered again (a retry whose first answer was lost). Each key
/// is checked under its product's lock, which attaching takes too; the
/// products are locked in id order, as stock holds lock them.
pub fn forget_unused(db: &dyn Db, keys: &[String], now: i64) -> Result<Vec<String>, DbError> {
    transaction(db, |tx| {
        let mut forgotten = Vec::new();
        let mut candidates: Vec<(String, String)> = Vec::new();
        for key in keys {
            let rows = tx.query("SELECT product_id, expires_at, forgotten_at FROM image_uploads WHERE object_key = ?", &[key.as_str().into()])?;
            let Some(row) = rows.first() else { continue };
            if row.opt_text("forgotten_at")?.is_some() {
                forgotten.push(key.clone());
            } else if row.int("expires_at")? < now {
                candidates.push((row.text("product_id")?, key.clone()));
            }
        }
        candidates.sort();
        candidates.dedup();
        let stamp = clock::format_rfc3339(now);
        for (product_id, key) in candidates {
            let product = ProductId::parse(&product_id).map_err(|e| DbError::Other(e.to_string()))?;
            let attached = match stored_images(tx, &product) {
                Ok(images) => images.iter().any(|i| i.key == key),
                Err(AdminError::NotFound(_)) => false,
                Err(AdminError::Storage(e)) => return Err(e),
                Err(e) => return Err(DbError::Other(format!("{e:?}"))),
            };
            // A product may show the object by its URL, pasted into its
            // `image_urls` (found in review: that picture would be deleted),
            // also with a query or fragment after the key (`?w=800`, found
            // in review too). Keys are the shop's own
            // (`products/<id>/<uuid>.<ext>`): no LIKE wildcard in them.
            let linked = !tx.query("SELECT 1 AS x FROM products WHERE image_urls LIKE ?", &[format!("%{key}%").into()])?.is_empty();
            if !attached && !linked {
                tx.execute("UPDATE image_uploads SET forgotten_at = ? WHERE object_key = ?", &[stamp.as_str().into(), key.as_str().into()])?;
                forgotten.push(key);
            }
        }
        Ok(forgotten)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> String {
        let map: std::collections::HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned().unwrap_or_default()
    }

    const FULL: &[(&str, &str)] = &[
        ("object_storage_endpoint", "http://127.0.0.1:9000/"),
        ("object_storage_bucket", "shop-images"),
        ("object_storage_access_key_id", "AKID"),
        ("object_storage_secret_access_key", "secret"),
        ("object_storage_public_url", "https://cdn.example.com/shop-images/"),
    ];

    #[test]
    fn storage_is_off_complete_or_reported() {
        assert_eq!(StorageSettings::load(&vars(&[])), Ok(None));
        let s = StorageSettings::load(&vars(FULL)).unwrap().unwrap();
        assert_eq!((s.endpoint.as_str(), s.region.as_str(), s.public_url.as_str()), ("http://127.0.0.1:9000", "us-east-1", "https://cdn.example.com/shop-images"));
        assert_eq!((s.max_bytes, s.url_ttl_secs), (DEFAULT_MAX_BYTES, DEFAULT_URL_TTL_SECS));
        let half = StorageSettings::load(&vars(&FULL[..2])).unwrap_err();
        assert_eq!(half.len(), 3, "{half:?}");
        let mut bad = FULL.to_vec();
        bad.extend([("object_storage_endpoint", "http://x/bucket"), ("image_upload_max_bytes", "0")]);
        let problems = StorageSettings::load(&vars(&bad)).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(StorageSettings::load(&vars(&[("image_upload_url_ttl_secs", "5")])).is_err());
    }

    /// A catalog with the demo products, and the storage settings of [`FULL`].
    fn catalog() -> (storage::native::MemDb, StorageSettings) {
        let db = storage::native::MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        storage::migrations::apply_data_once(&db, "demo_catalog", crate::schema::DEMO_CATALOG).unwrap();
        (db, StorageSettings::load(&vars(FULL)).unwrap().unwrap())
    }

    #[test]
    fn objects_no_product_shows_are_listed_once_their_url_expired_and_forgotten_only_then() {
        let (db, settings) = catalog();
        let product = ProductId::parse("a0000000-0000-4000-8000-000000000006").unwrap();
        let upload = |id: &str, at: i64| issue_upload(&db, &settings, &product, id, &UploadRequest { content_type: "image/png".into(), content_length: 10 }, at).unwrap();
        let t0 = 1_800_000_000;
        let (kept, dropped, never) = (upload("11111111-1111-4111-8111-111111111111", t0), upload("22222222-2222-4222-8222-222222222222", t0), upload("33333333-3333-4333-8333-333333333333", t0));
        let attach_key = |u: &Upload| attach(&db, &settings, &product, &AttachRequest { key: u.key.clone(), alt: String::new(), position: None }, t0).unwrap();
        attach_key(&kept);
        let removed = attach_key(&dropped);
        remove(&db, &product, &removed.images.iter().find(|i| i.key == dropped.key).unwrap().id, t0).unwrap();
        let later = t0 + i64::from(settings.url_ttl_secs) + 1;
        let listed = |now: i64| unused(&db, now, 100, 0).unwrap();
        assert_eq!(listed(t0).1, 0, "nothing while the upload URLs still work");
        let (objects, total) = listed(later);
        let mut keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        keys.sort();
        assert_eq!((keys, total), (vec![dropped.key.as_str(), never.key.as_str()], 2), "taken off, and never attached");
        // Attached again after it was listed: not forgotten.
        attach_key(&dropped);
        let asked = vec![kept.key.clone(), dropped.key.clone(), never.key.clone(), "products/x/y.png".to_string()];
        assert_eq!(forget_unused(&db, &asked, t0).unwrap(), Vec::<String>::new(), "nothing before the URLs expire");
        assert_eq!(forget_unused(&db, &asked, later).unwrap(), vec![never.key.clone()]);
        assert_eq!(listed(later).1, 0);
        assert_eq!(forget_unused(&db, &asked, later + 1).unwrap(), vec![never.key.clone()], "asked again, the same answer");
        let refused = attach(&db, &settings, &product, &AttachRequest { key: never.key.clone(), alt: String::new(), position: None }, later);
        assert!(matches!(refused, Err(AdminError::Invalid(_))), "a forgotten key is never attached again");
        // Another product showing the object by its URL keeps it.
        let taken_off = upload("44444444-4444-4444-8444-444444444444", t0);
        db.execute("UPDATE products SET image_urls = ? WHERE id = 'a0000000-0000-4000-8000-000000000007'", &[format!("[\"{}?w=800\"]", taken_off.url).into()]).unwrap();
        assert_eq!(forget_unused(&db, &[taken_off.key.clone()], later).unwrap(), Vec::<String>::new(), "also with a query after the key");
    }

    #[test]
    fn only_three_image_types() {
        assert_eq!(extension_for("image/jpeg"), Some("jpg"));
        assert_eq!(extension_for("image/webp"), Some("webp"));
        for bad in ["image/gif", "image/svg+xml", "text/html", ""] {
            assert_eq!(extension_for(bad), None, "{bad}");
        }
    }

    #[test]
    fn positions_and_alt_text() {
        assert_eq!(parse_position(0, 0), Ok(0));
        assert_eq!(parse_position(2, 2), Ok(2));
        assert!(parse_position(3, 2).is_err() && parse_position(-1, 2).is_err());
        assert_eq!(parse_alt("  "), Ok(String::new()));
        assert!(parse_alt(&"a".repeat(MAX_ALT_CHARS + 1)).is_err());
        assert!(parse_alt("a\u{7}").is_err());
    }
}
