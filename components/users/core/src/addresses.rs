//! The address book: a user's saved postal addresses, one of them the
//! default shipping address. Entries are validated like an order's shipping
//! address (`postal`); an order keeps its own copy, so editing or deleting
//! an entry never changes an order.
//!
//! Every change runs in one transaction that first locks the user's row on
//! Postgres (SQLite serialises writers anyway), so the size limit and "at
//! most one default" hold under concurrent requests on both stores; a
//! partial unique index enforces the latter in the schema too.

use postal::Address;
use serde::Serialize;
use storage::{Db, DbError, Row, Value};

/// Entries a user may keep.
pub const MAX_PER_USER: i64 = 20;

/// One saved address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub id: String,
    pub label: Option<String>,
    #[serde(flatten)]
    pub address: Address,
    pub default_shipping: bool,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "id, label, name, line1, line2, city, region, postal_code, country, is_default_shipping, created_at, updated_at";

fn from_row(r: &Row<'_>) -> Result<Entry, DbError> {
    Ok(Entry {
        id: r.text("id")?,
        label: r.opt_text("label")?,
        address: Address {
            name: r.text("name")?,
            line1: r.text("line1")?,
            line2: r.opt_text("line2")?,
            city: r.text("city")?,
            region: r.opt_text("region")?,
            postal_code: r.text("postal_code")?,
            country: r.text("country")?,
        },
        default_shipping: r.int("is_default_shipping")? == 1,
        created_at: r.text("created_at")?,
        updated_at: r.text("updated_at")?,
    })
}

/// The user's entries: the default first, then the newest.
pub fn list(db: &dyn Db, user_id: &str) -> Result<Vec<Entry>, DbError> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM addresses WHERE user_id = ? ORDER BY is_default_shipping DESC, created_at DESC, id"),
        &[user_id.into()],
    )?;
    rows.iter().map(|r| from_row(&r)).collect()
}

/// One of the user's entries (`None` for another user's id, too).
pub fn get(db: &dyn Db, user_id: &str, id: &str) -> Result<Option<Entry>, DbError> {
    let rows = db.query(&format!("SELECT {COLUMNS} FROM addresses WHERE id = ? AND user_id = ?"), &[id.into(), user_id.into()])?;
    rows.first().map(|r| from_row(&r)).transpose()
}

/// The user's default shipping address, if any.
pub fn default_shipping(db: &dyn Db, user_id: &str) -> Result<Option<Entry>, DbError> {
    let rows = db.query(&format!("SELECT {COLUMNS} FROM addresses WHERE user_id = ? AND is_default_shipping = 1"), &[user_id.into()])?;
    rows.first().map(|r| from_row(&r)).transpose()
}

/// The label and address columns' values, in `COLUMNS` order.
fn entry_params(label: Option<&str>, a: &Address) -> Vec<Value> {
    vec![
        label.into(),
        a.name.as_str().into(),
        a.line1.as_str().into(),
        a.line2.as_deref().into(),
        a.city.as_str().into(),
        a.region.as_deref().into(),
        a.postal_code.as_str().into(),
        a.country.as_str().into(),
    ]
}

/// Lock the account's row for the rest of the transaction; false when the
/// account is deleted (or gone): its book must not get entries again, even
/// from a request that started before the deletion or carries an access
/// token issued before it.
fn lock_user(tx: &dyn Db, user_id: &str) -> Result<bool, DbError> {
    let lock = if tx.dialect() == storage::Dialect::Postgres { " FOR UPDATE" } else { "" };
    Ok(!tx.query(&format!("SELECT id FROM users WHERE id = ? AND deleted_at IS NULL{lock}"), &[user_id.into()])?.is_empty())
}

fn clear_default(tx: &dyn Db, user_id: &str, now: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE addresses SET is_default_shipping = 0, updated_at = ? WHERE user_id = ? AND is_default_shipping = 1",
        &[now.into(), user_id.into()],
    )
}

/// Why an entry was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The user already has [`MAX_PER_USER`] entries.
    Full,
    /// The account was deleted.
    AccountGone,
}

/// Add an entry (inside the caller's transaction). The first entry is the
/// default shipping address whatever `default_shipping` says; a new default
/// replaces the old one.
pub fn add(tx: &dyn Db, user_id: &str, id: &str, label: Option<&str>, a: &Address, default_shipping: bool, now: &str) -> Result<Result<Entry, Refused>, DbError> {
    if !lock_user(tx, user_id)? {
        return Ok(Err(Refused::AccountGone));
    }
    let count = tx.query("SELECT COUNT(*) AS n FROM addresses WHERE user_id = ?", &[user_id.into()])?.first().map(|r| r.int("n")).transpose()?.unwrap_or(0);
    if count >= MAX_PER_USER {
        return Ok(Err(Refused::Full));
    }
    let is_default = default_shipping || count == 0;
    if is_default {
        clear_default(tx, user_id, now)?;
    }
    let mut params: Vec<Value> = vec![id.into()];
    params.extend(entry_params(label, a));
    params.extend([(is_default as i64).into(), now.into(), now.into(), user_id.into()]);
    let rows = tx.query(
        &format!("INSERT INTO addresses ({COLUMNS}, user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"),
        &params,
    )?;
    let row = rows.first().ok_or_else(|| DbError::Other("the inserted address was not returned".into()))?;
    Ok(Ok(from_row(&row)?))
}

/// Replace an entry's label and address; `Some(true)` makes it the default,
/// `Some(false)` stops it being the default, `None` leaves that as it is.
/// `None` when the user has no such entry.
pub fn replace(
    tx: &dyn Db,
    user_id: &str,
    id: &str,
    label: Option<&str>,
    a: &Address,
    default_shipping: Option<bool>,
    now: &str,
) -> Result<Option<Entry>, DbError> {
    if !lock_user(tx, user_id)? || get(tx, user_id, id)?.is_none() {
        return Ok(None);
    }
    if default_shipping == Some(true) {
        clear_default(tx, user_id, now)?;
    }
    let default_expr = match default_shipping {
        Some(true) => "1",
        Some(false) => "0",
        None => "is_default_shipping",
    };
    let mut params = entry_params(label, a);
    params.extend([now.into(), id.into(), user_id.into()]);
    let rows = tx.query(
        &format!(
            "UPDATE addresses SET label = ?, name = ?, line1 = ?, line2 = ?, city = ?, region = ?, postal_code = ?, country = ?, \
             is_default_shipping = {default_expr}, updated_at = ? WHERE id = ? AND user_id = ? RETURNING {COLUMNS}"
        ),
        &params,
    )?;
    rows.first().map(|r| from_row(&r)).transpose()
}

/// Delete an entry. False when the user has no such entry. Deleting the
/// default leaves the user without one (no other entry is promoted
/// silently).
pub fn remove(tx: &dyn Db, user_id: &str, id: &str) -> Result<bool, DbError> {
    let rows = tx.query("DELETE FROM addresses WHERE id = ? AND user_id = ? RETURNING id", &[id.into(), user_id.into()])?;
    Ok(!rows.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    fn db() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        for u in ["u1", "u2"] {
            db.execute(
                "INSERT INTO users (id, email, password_hash, first_name, last_name, role, created_at, updated_at) VALUES (?, ?, 'h', 'A', 'B', 'customer', 't', 't')",
                &[u.into(), format!("{u}@b.co").into()],
            )
            .unwrap();
        }
        db
    }

    fn home(city: &str) -> Address {
        Address { name: "Ann".into(), line1: "1 Main St".into(), line2: None, city: city.into(), region: None, postal_code: "1".into(), country: "US".into() }
    }

    #[test]
    fn the_first_entry_is_the_default_and_a_new_default_replaces_it() {
        let db = db();
        let a = add(&db, "u1", "a1", Some("Home"), &home("A"), false, "t1").unwrap().unwrap();
        assert!(a.default_shipping);
        let b = add(&db, "u1", "a2", None, &home("B"), false, "t2").unwrap().unwrap();
        assert!(!b.default_shipping);
        add(&db, "u1", "a3", None, &home("C"), true, "t3").unwrap().unwrap();
        assert_eq!(default_shipping(&db, "u1").unwrap().unwrap().id, "a3");
        assert_eq!(list(&db, "u1").unwrap().iter().filter(|e| e.default_shipping).count(), 1);
        replace(&db, "u1", "a2", Some("Work"), &home("B2"), Some(true), "t4").unwrap().unwrap();
        let all = list(&db, "u1").unwrap();
        assert_eq!((all[0].id.as_str(), all[0].label.as_deref(), all[0].address.city.as_str()), ("a2", Some("Work"), "B2"));
        assert_eq!(all.iter().filter(|e| e.default_shipping).count(), 1);
        replace(&db, "u1", "a2", None, &home("B3"), None, "t5").unwrap().unwrap();
        assert!(get(&db, "u1", "a2").unwrap().unwrap().default_shipping, "kept when not said");
    }

    #[test]
    fn entries_belong_to_their_user() {
        let db = db();
        add(&db, "u1", "a1", None, &home("A"), false, "t").unwrap().unwrap();
        assert!(get(&db, "u2", "a1").unwrap().is_none());
        assert!(replace(&db, "u2", "a1", None, &home("X"), Some(true), "t").unwrap().is_none());
        assert!(!remove(&db, "u2", "a1").unwrap());
        assert!(remove(&db, "u1", "a1").unwrap());
        assert!(default_shipping(&db, "u1").unwrap().is_none());
    }

    #[test]
    fn the_book_has_a_size_limit() {
        let db = db();
        for i in 0..MAX_PER_USER {
            add(&db, "u1", &format!("a{i}"), None, &home("A"), false, "t").unwrap().unwrap();
        }
        assert_eq!(add(&db, "u1", "extra", None, &home("A"), false, "t").unwrap(), Err(Refused::Full));
        assert!(add(&db, "u2", "theirs", None, &home("A"), false, "t").unwrap().is_ok(), "per user");
    }
}
