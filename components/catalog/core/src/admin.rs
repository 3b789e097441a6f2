//! Catalog management: creating, changing and deleting products and
//! categories, and setting stock. Input is parsed into valid values here;
//! the HTTP layer only maps errors to statuses.

use crate::domain::{listing::parse_slug, Category, Product, ProductId};
use crate::{inventory, repository};
use money::Currency;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use storage::{transaction, Db, DbError, Value};
use text_input::FieldProblems;

/// Limits on catalog text.
pub const MAX_SKU_CHARS: usize = 64;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5000;
pub const MAX_CATEGORY_NAME_CHARS: usize = 100;
pub const MAX_CATEGORY_DESCRIPTION_CHARS: usize = 1000;
pub const MAX_IMAGES: usize = 10;
pub const MAX_URL_CHARS: usize = 2048;
/// A generous ceiling that keeps line totals far from overflow.
pub const MAX_PRICE_MINOR: i64 = 100_000_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000;

/// Why a catalog write was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminError {
    /// Field problems, reported together: field → problem.
    Invalid(Map<String, Json>),
    NotFound(&'static str),
    /// A uniqueness rule: (code, message).
    Conflict(&'static str, String),
    Storage(DbError),
}

impl From<DbError> for AdminError {
    fn from(e: DbError) -> Self {
        Self::Storage(e)
    }
}

/// A SKU: 1–64 of `A-Z 0-9 - _ .`, stored upper-case so `abc-1` and `ABC-1` are one SKU.
pub fn parse_sku(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_uppercase();
    let ok = !s.is_empty()
        && s.len() <= MAX_SKU_CHARS
        && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(s)
    } else {
        Err(format!("must be 1-{MAX_SKU_CHARS} letters, digits, '-', '_' or '.'"))
    }
}

fn parse_description(raw: &str, max: usize) -> Result<String, String> {
    let t = raw.trim();
    if t.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_string())
}

fn parse_image_urls(urls: &[String]) -> Result<Vec<String>, String> {
    if urls.len() > MAX_IMAGES {
        return Err(format!("at most {MAX_IMAGES} images"));
    }
    urls.iter()
        .map(|u| {
            let u = u.trim();
            let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
            let host_ok = u.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !scheme_ok || !host_ok || u.len() > MAX_URL_CHARS || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(format!("`{}` is not an http(s) URL of at most {MAX_URL_CHARS} characters", u.chars().take(80).collect::<String>()))
            } else {
                Ok(u.to_string())
            }
        })
        .collect()
}

fn parse_price(amount: i64) -> Result<i64, String> {
    if (0..=MAX_PRICE_MINOR).contains(&amount) {
        Ok(amount)
    } else {
        Err(format!("amount_minor must be a whole number from 0 to {MAX_PRICE_MINOR}"))
    }
}

fn parse_stock(n: i64) -> Result<i64, String> {
    if (0..=MAX_STOCK).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be a whole number from 0 to {MAX_STOCK}"))
    }
}

/// A price as clients send it. Amounts are integers in minor units; a
/// fractional number is rejected by the JSON parser, never rounded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    pub amount_minor: i64,
    pub currency: String,
}

/// Fields of a product write. On create, `sku`, `name` and `price` are required.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<PriceInput>,
    /// A category id, or `null` for none.
    #[serde(default, deserialize_with = "explicit_null")]
    pub category_id: Option<Option<String>>,
    pub image_urls: Option<Vec<String>>,
    pub active: Option<bool>,
    pub stock_on_hand: Option<i64>,
    /// On a change: the stock on hand the change is based on (optional
    /// precondition, as on `PUT /api/products/{id}/inventory`). Refused on
    /// create.
    pub expected_on_hand: Option<i64>,
}

/// Distinguish an absent field (`None`) from an explicit `null` (`Some(None)`).
fn explicit_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The stored row of a product, fully validated.
struct ProductRow {
    sku: String,
    name: String,
    description: String,
    price_minor: i64,
    currency: Currency,
    category_id: Option<String>,
    image_urls: Vec<String>,
    active: bool,
    stock_on_hand: i64,
}

impl ProductRow {
    /// Column values in the order `sku, name, description, price_minor,
    /// currency, stock_on_hand, category_id, image_urls, active`.
    fn values(&self) -> Vec<Value> {
        vec![
            self.sku.as_str().into(),
            self.name.as_str().into(),
            self.description.as_str().into(),
            self.price_minor.into(),
            self.currency.code().into(),
            self.stock_on_hand.into(),
            self.category_id.clone().into(),
            json!(self.image_urls).to_string().into(),
            self.active.into(),
        ]
    }
}

/// Whether the category exists, its row locked for the rest of the
/// transaction when it does (a portable `SELECT ... FOR UPDATE`, as
/// [`lock_product`]). A product write that files a product under it and
/// [`delete_category`] both take this lock, so on Postgres one waits for the
/// other: the deletion then sees the product (409 `category_in_use`), or the
/// product write sees no category (422), never a foreign-key error. On
/// SQLite, which does not enforce the foreign key, the write transaction
/// alone keeps a product from pointing at a deleted category.
fn lock_category(tx: &dyn Db, id: &str) -> Result<bool, DbError> {
    Ok(!tx.query("UPDATE categories SET updated_at = updated_at WHERE id = ? RETURNING id", &[id.into()])?.is_empty())
}

/// Merge `input` over `base` (None on create) and validate the result.
/// Inside the write's transaction: a category given is locked.
fn validated(db: &dyn Db, input: &ProductInput, base: Option<&Product>) -> Result<ProductRow, AdminError> {
    let mut p = FieldProblems::default();
    let required = |field: &str, p: &mut FieldProblems| p.add(field, "is required");
    let sku = match (&input.sku, base) {
        (Some(raw), _) => p.check("sku", parse_sku(raw)),
        (None, Some(b)) => Some(b.sku.clone()),
        (None, None) => {
            required("sku", &mut p);
            None
        }
    };
    let name = match (&input.name, base) {
        (Some(raw), _) => p.check("name", text_input::bounded(raw, MAX_NAME_CHARS)),
        (None, Some(b)) => Some(b.name.clone()),
        (None, None) => {
            required("name", &mut p);
            None
        }
    };
    let description = match (&input.description, base) {
        (Some(raw), _) => p.check("description", parse_description(raw, MAX_DESCRIPTION_CHARS)),
        (None, Some(b)) => Some(b.description.clone()),
        (None, None) => Some(String::new()),
    };
    let price = match (&input.price, base) {
        (Some(pi), _) => {
            let amount = p.check("price.amount_minor", parse_price(pi.amount_minor));
            let currency = p.check("price.currency", Currency::parse(&pi.currency).map_err(|e| e.to_string()));
            amount.zip(currency)
        }
        (None, Some(b)) => Some((b.price.amount_minor, b.price.currency)),
        (None, None) => {
            required("price", &mut p);
            None
        }
    };
    let category_id = match (&input.category_id, base) {
        (Some(Some(id)), _) => match lock_category(db, id.trim())? {
            true => Some(Some(id.trim().to_string())),
            false => {
                p.add("category_id", "no such category");
                None
            }
        },
        (Some(None), _) => Some(None),
        (None, Some(b)) => Some(b.category.as_ref().map(|c| c.id.clone())),
        (None, None) => Some(None),
    };
    let image_urls = match (&input.image_urls, base) {
        (Some(urls), _) => p.check("image_urls", parse_image_urls(urls)),
        (None, Some(b)) => Some(b.image_urls.clone()),
        (None, None) => Some(Vec::new()),
    };
    let stock = match (input.stock_on_hand, base) {
        (Some(n), _) => p.check("stock_on_hand", parse_stock(n)),
        (None, Some(b)) => Some(b.on_hand),
        (None, None) => Some(0),
    };
    p.finish().map_err(AdminError::Invalid)?;
    match (sku, name, description, price, category_id, image_urls, stock) {
        (Some(sku), Some(name), Some(description), Some((price_minor, currency)), Some(category_id), Some(image_urls), Some(stock_on_hand)) => {
            Ok(ProductRow {
                sku,
                name,
                description,
                price_minor,
                currency,
                category_id,
                image_urls,
                active: input.active.or(base.map(|b| b.active)).unwrap_or(true),
                stock_on_hand,
            })
        }
        _ => Err(AdminError::Storage(DbError::Other("validated product incomplete".into()))),
    }
}

fn sku_conflict(sku: &str) -> AdminError {
    AdminError::Conflict("sku_taken", format!("another product already has SKU {sku}"))
}

fn sku_taken_by_other(db: &dyn Db, sku: &str, except: Option<&str>) -> Result<bool, DbError> {
    Ok(!db
        .query("SELECT 1 AS x FROM products WHERE sku = ? AND id <> COALESCE(?, '')", &[sku.into(), except.into()])?
        .is_empty())
}

fn map_unique(e: DbError, sku: &str) -> AdminError {
    match e {
        DbError::Constraint(msg) if msg.contains("sku") => sku_conflict(sku),
        other => AdminError::Storage(other),
    }
}

/// Create a product.
pub fn create_product(db: &dyn Db, id: &ProductId, input: &ProductInput, now: i64) -> Result<Product, AdminError> {
    if input.expected_on_hand.is_some() {
        let mut p = FieldProblems::default();
        p.add("expected_on_hand", "applies only to a change of an existing product");
        p.finish().map_err(AdminError::Invalid)?;
    }
    transaction(db, |tx| {
        let row = validated(tx, input, None)?;
        if sku_taken_by_other(tx, &row.sku, None)? {
            return Err(sku_conflict(&row.sku));
        }
        let stamp = clock::now_rfc3339();
        tx.execute(
            "INSERT INTO products (id, sku, name, description, price_minor, currency, stock_on_hand, category_id, image_urls, active, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[vec![id.as_str().into()], row.values(), vec![stamp.as_str().into(), stamp.as_str().into()]].concat(),
        )
        .map_err(|e| map_unique(e, &row.sku))?;
        repository::get_product(tx, id, true, now)?.ok_or(AdminError::NotFound("product"))
    })
}

/// Change a product: only the fields given change.
pub fn update_product(db: &dyn Db, id: &ProductId, input: &ProductInput, now: i64) -> Result<Product, AdminError> {
    // Lapsed holds leave `products.reserved` first, so the stock check
    // below and the CHECK constraint see only live ones.
    inventory::sweep_due(db, now)?;
    transaction(db, |tx| {
        let held = lock_product(tx, id)?;
        let current = repository::get_product(tx, id, true, now)?.ok_or(AdminError::NotFound("product"))?;
        check_expected_on_hand(current.on_hand, input.expected_on_hand)?;
        let row = validated(tx, input, Some(&current))?;
        if sku_taken_by_other(tx, &row.sku, Some(id.as_str()))? {
            return Err(sku_conflict(&row.sku));
        }
        if row.stock_on_hand < held {
            return Err(below_reserved(held));
        }
        tx.execute(
            "UPDATE products SET sku = ?, name = ?, description = ?, price_minor = ?, currency = ?, stock_on_hand = ?, \
             category_id = ?, image_urls = ?, active = ?, updated_at = ? WHERE id = ?",
            &[row.values(), vec![clock::now_rfc3339().into(), id.as_str().into()]].concat(),
        )
        .map_err(|e| map_unique(e, &row.sku))?;
        repository::get_product(tx, id, true, now)?.ok_or(AdminError::NotFound("product"))
    })
}

/// Lock the product's row for the rest of the transaction, before it is
/// read: an edit writes back columns it read (stock on hand among them),
/// so on Postgres a sale, restock or hold committed between the read and
/// the write would otherwise be undone. A portable `SELECT ... FOR
/// UPDATE`; on SQLite `BEGIN IMMEDIATE` already holds the database.
/// Returns the units its `reserved` column counts: live holds, and on
/// Postgres possibly a lapsed one another transaction is giving back right
/// now (a sweep skips holds locked elsewhere) — what the constraint
/// `reserved <= stock_on_hand` checks.
pub(crate) fn lock_product(tx: &dyn Db, id: &ProductId) -> Result<i64, AdminError> {
    lock_product_stock(tx, id).map(|(_, reserved)| reserved)
}

/// [`lock_product`], with the stock on hand as well: `(on_hand, reserved)`.
fn lock_product_stock(tx: &dyn Db, id: &ProductId) -> Result<(i64, i64), AdminError> {
    let rows = tx.query("UPDATE products SET updated_at = updated_at WHERE id = ? RETURNING stock_on_hand, reserved", &[id.as_str().into()])?;
    let row = rows.first().ok_or(AdminError::NotFound("product"))?;
    Ok((row.int("stock_on_hand")?, row.int("reserved")?))
}

fn below_reserved(reserved: i64) -> AdminError {
    AdminError::Conflict(
        "below_reserved",
        format!("stock on hand cannot go below the {reserved} units held by live reservations"),
    )
}

/// Set the stock on hand. It may not drop below what live reservations hold.
/// With `expected_on_hand` (what the admin saw), only if that is still the
/// stock on hand: a sale or restock committed since the admin read it would
/// otherwise be written over (found in review: the console sent the count
/// it had shown, and units sold meanwhile came back on sale).
pub fn set_stock(db: &dyn Db, id: &ProductId, stock_on_hand: i64, expected_on_hand: Option<i64>, now: i64) -> Result<Product, AdminError> {
    let mut p = FieldProblems::default();
    let stock = p.check("stock_on_hand", parse_stock(stock_on_hand));
    p.finish().map_err(AdminError::Invalid)?;
    let stock = stock.unwrap_or(0);
    inventory::sweep_due(db, now)?;
    transaction(db, |tx| {
        let (now_on_hand, held) = lock_product_stock(tx, id)?;
        check_expected_on_hand(now_on_hand, expected_on_hand)?;
        if stock < held {
            return Err(below_reserved(held));
        }
        tx.execute(
            "UPDATE products SET stock_on_hand = ?, updated_at = ? WHERE id = ?",
            &[stock.into(), clock::now_rfc3339().into(), id.as_str().into()],
        )?;
        repository::get_product(tx, id, true, now)?.ok_or(AdminError::NotFound("product"))
    })
}

/// 409 `stock_changed` unless the stock on hand is still the `expected`
/// one (when given). Read under the product's lock.
fn check_expected_on_hand(now_on_hand: i64, expected: Option<i64>) -> Result<(), AdminError> {
    match expected {
        Some(expected) if expected != now_on_hand => Err(AdminError::Conflict(
            "stock_changed",
            format!("stock on hand is now {now_on_hand}, not the {expected} this change was based on: check it and set it again"),
        )),
        _ => Ok(()),
    }
}

/// What deleting a product did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deletion {
    /// Never ordered: removed for good.
    Deleted,
    /// Ordered at some point: hidden from the store, kept for order history.
    Deactivated(Product),
}

/// Delete a product, or deactivate it if it has ever been ordered.
///
/// The product's row is locked first ([`lock_product`]), as every stock
/// hold locks it: on Postgres a hold being placed meanwhile commits first
/// and makes this a deactivation, or finds the product gone, instead of
/// the deletion failing on the hold's foreign key.
pub fn delete_product(db: &dyn Db, id: &ProductId, now: i64) -> Result<Deletion, AdminError> {
    transaction(db, |tx| {
        lock_product(tx, id)?;
        if inventory::ever_ordered(tx, id.as_str())? {
            tx.execute(
                "UPDATE products SET active = 0, updated_at = ? WHERE id = ?",
                &[clock::now_rfc3339().into(), id.as_str().into()],
            )?;
            let p = repository::get_product(tx, id, true, now)?.ok_or(AdminError::NotFound("product"))?;
            Ok(Deletion::Deactivated(p))
        } else {
            // Its uploads stay recorded: their objects are unused now
            // (`images::unused`), for an operator to remove.
            tx.execute("DELETE FROM products WHERE id = ?", &[id.as_str().into()])?;
            Ok(Deletion::Deleted)
        }
    })
}

// ---------------------------------------------------------------- categories

/// Fields of a category write. On create, `slug` and `name` are required.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryInput {
    pub slug: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
}

fn get_category(db: &dyn Db, id: &str) -> Result<Option<Category>, DbError> {
    Ok(repository::list_categories(db)?.into_iter().find(|c| c.id == id))
}

fn slug_conflict(slug: &str) -> AdminError {
    AdminError::Conflict("slug_taken", format!("another category already has slug {slug}"))
}

/// Create or change a category (`id` is the new or existing id).
pub fn save_category(db: &dyn Db, id: &str, input: &CategoryInput, create: bool) -> Result<Category, AdminError> {
    transaction(db, |tx| {
        // Locked before it is read: the fields not sent are kept as they are
        // now, not as they were before a concurrent edit committed (on
        // Postgres a plain read does not wait for it).
        if !create && !lock_category(tx, id)? {
            return Err(AdminError::NotFound("category"));
        }
        let current = get_category(tx, id)?;
        if !create && current.is_none() {
            return Err(AdminError::NotFound("category"));
        }
        let mut p = FieldProblems::default();
        let slug = match (&input.slug, &current) {
            (Some(raw), _) => p.check("slug", parse_slug(raw)),
            (None, Some(c)) => Some(c.slug.clone()),
            (None, None) => {
                p.add("slug", "is required");
                None
            }
        };
        let name = match (&input.name, &current) {
            (Some(raw), _) => p.check("name", text_input::bounded(raw, MAX_CATEGORY_NAME_CHARS)),
            (None, Some(c)) => Some(c.name.clone()),
            (None, None) => {
                p.add("name", "is required");
                None
            }
        };
        let description = match (&input.description, &current) {
            (Some(raw), _) => p.check("description", parse_description(raw, MAX_CATEGORY_DESCRIPTION_CHARS)),
            (None, Some(c)) => Some(c.description.clone()),
            (None, None) => Some(String::new()),
        };
        p.finish().map_err(AdminError::Invalid)?;
        let (Some(slug), Some(name), Some(description)) = (slug, name, description) else {
            return Err(AdminError::Storage(DbError::Other("validated category incomplete".into())));
        };
        let taken = !tx
            .query("SELECT 1 AS x FROM categories WHERE slug = ? AND id <> ?", &[slug.as_str().into(), id.into()])?
            .is_empty();
        if taken {
            return Err(slug_conflict(&slug));
        }
        let stamp = clock::now_rfc3339();
        let params: Vec<Value> = vec![slug.as_str().into(), name.as_str().into(), description.as_str().into(), stamp.as_str().into(), id.into()];
        let result = if create {
            tx.execute(
                "INSERT INTO categories (slug, name, description, created_at, updated_at, id) VALUES (?, ?, ?, ?, ?, ?)",
                &[params[0].clone(), params[1].clone(), params[2].clone(), params[3].clone(), params[3].clone(), params[4].clone()],
            )
        } else {
            tx.execute("UPDATE categories SET slug = ?, name = ?, description = ?, updated_at = ? WHERE id = ?", &params)
        };
        result.map_err(|e| match e {
            DbError::Constraint(_) => slug_conflict(&slug),
            other => AdminError::Storage(other),
        })?;
        get_category(tx, id)?.ok_or(AdminError::NotFound("category"))
    })
}

/// Delete a category that no product uses.
/// Its row is locked first, as every product write that files a product
/// under it locks it ([`lock_category`]).
pub fn delete_category(db: &dyn Db, id: &str) -> Result<(), AdminError> {
    transaction(db, |tx| {
        if !lock_category(tx, id)? {
            return Err(AdminError::NotFound("category"));
        }
        let used = tx.query("SELECT COUNT(*) AS n FROM products WHERE category_id = ?", &[id.into()])?;
        let n = used.first().map(|r| r.int("n")).transpose()?.unwrap_or(0);
        if n > 0 {
            return Err(AdminError::Conflict(
                "category_in_use",
                format!("{n} products (active or not) are in this category; move them first"),
            ));
        }
        tx.execute("DELETE FROM categories WHERE id = ?", &[id.into()])?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus() {
        assert_eq!(parse_sku(" abc-1.x_2 ").unwrap(), "ABC-1.X_2");
        for bad in ["", "a b", "ü", &"A".repeat(65), "a/b"] {
            assert!(parse_sku(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images() {
        assert!(parse_image_urls(&["https://img.example.com/a.jpg".into()]).is_ok());
        for bad in ["ftp://x/y", "https://", "https:///x", "javascript:alert(1)", "https://a b"] {
            assert!(parse_image_urls(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(parse_image_urls(&vec!["https://a.b/c".to_string(); 11]).is_err());
    }

    #[test]
    fn prices_and_stock() {
        assert!(parse_price(0).is_ok() && parse_price(-1).is_err() && parse_price(MAX_PRICE_MINOR + 1).is_err());
        assert!(parse_stock(0).is_ok() && parse_stock(-5).is_err());
    }
}
