//! Single-use tokens sent by email: one proves the owner of an address
//! (email verification), the other lets the owner set a new password
//! (password reset).
//!
//! A token is 256 random bits, shown only in the email and stored only as
//! its SHA-256 hash (like refresh tokens), with an expiry. Using it is one
//! `UPDATE … WHERE used_at IS NULL AND expires_at > now RETURNING`, so two
//! requests with the same token cannot both succeed, on SQLite or Postgres.
//!
//! The email is sent through the outbox: the event's payload carries the
//! link under `secret` (`user.registered` for the first verification link,
//! else the purpose's own event), which the notifications service renders
//! and never publishes or shows to admins. Once the token is used or replaced, the
//! `secret` is removed from the outbox row, so the users database keeps no
//! usable link.

use crate::repository::{self, PublicUser};
use crate::tokens;
use http_kit::ApiError;
use serde_json::{json, Value as Json};
use storage::{Db, DbError};

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    PasswordReset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
        }
    }

    /// How long the link works by default: two days to confirm an address,
    /// one hour to reset a password.
    pub fn default_ttl_secs(self) -> i64 {
        match self {
            Self::VerifyEmail => 48 * 3600,
            Self::PasswordReset => 3600,
        }
    }

    /// How long the link works here: `password_reset_ttl_secs` (1-86400)
    /// for reset links, else the default.
    pub fn ttl_secs_from_variables(self) -> i64 {
        let configured = match self {
            Self::PasswordReset => spin_sdk::variables::get("password_reset_ttl_secs").ok().and_then(|v| v.trim().parse::<i64>().ok()),
            Self::VerifyEmail => None,
        };
        configured.filter(|t| (1..=86400).contains(t)).unwrap_or(self.default_ttl_secs())
    }

    /// The outbox event that sends the link.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::VerifyEmail => "user.verification_requested",
            Self::PasswordReset => "user.password_reset_requested",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::VerifyEmail => "ve_",
            Self::PasswordReset => "pr_",
        }
    }

    /// The storefront page the link opens (it posts the token back).
    fn page(self) -> &'static str {
        match self {
            Self::VerifyEmail => "account/verify-email",
            Self::PasswordReset => "account/reset-password",
        }
    }
}

/// The storefront's public address for links in emails, from the
/// `storefront_url` variable (default: the local `spin up` address).
pub fn storefront_url_from_variables() -> String {
    let v = spin_sdk::variables::get("storefront_url").unwrap_or_default();
    let v = v.trim().trim_end_matches('/');
    if v.is_empty() { "http://127.0.0.1:3000".to_string() } else { v.to_string() }
}

/// The link for a token.
pub fn link(storefront_url: &str, purpose: Purpose, token: &str) -> String {
    format!("{}/{}?token={token}", storefront_url.trim_end_matches('/'), purpose.page())
}

/// Issue a token for `user` whose link the outbox event
/// (`outbox_event`, `outbox_key`) will carry, in the caller's transaction,
/// and return the payload fields that carry it: `expires_at` and `secret`
/// (`{token, link}`). A new password-reset token replaces the user's
/// earlier ones (only the newest link works); verification links stay
/// valid until they expire, whichever arrives first.
pub fn issue(
    tx: &dyn Db,
    purpose: Purpose,
    user: &PublicUser,
    storefront_url: &str,
    now: i64,
    ttl_secs: i64,
    (outbox_event, outbox_key): (&str, &str),
) -> Result<serde_json::Map<String, Json>, ApiError> {
    let (token, hash) = tokens::new_secret(purpose.prefix())?;
    let db_err = http_kit::db_error;
    if purpose == Purpose::PasswordReset {
        retire_unused(tx, purpose, &user.id, now).map_err(db_err)?;
    }
    let expires_at = now + ttl_secs;
    tx.execute(
        "INSERT INTO account_tokens (token_hash, purpose, user_id, email, outbox_event, outbox_key, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            hash.as_str().into(),
            purpose.as_str().into(),
            user.id.as_str().into(),
            user.email.as_str().into(),
            outbox_event.into(),
            outbox_key.into(),
            now.into(),
            expires_at.into(),
        ],
    )
    .map_err(db_err)?;
    let mut fields = serde_json::Map::new();
    fields.insert("expires_at".into(), json!(clock::format_rfc3339(expires_at)));
    fields.insert("secret".into(), json!({ "token": token, "link": link(storefront_url, purpose, &token) }));
    Ok(fields)
}

/// Issue a token and record its own event (`purpose.event_type()`), the
/// email that sends it.
pub fn send(tx: &dyn Db, purpose: Purpose, user: &PublicUser, storefront_url: &str, now: i64, ttl_secs: i64) -> Result<(), ApiError> {
    let request_id = http_kit::ids::uuid_v4()?;
    let mut payload = issue(tx, purpose, user, storefront_url, now, ttl_secs, (purpose.event_type(), &request_id))?;
    payload.insert("user".into(), json!(user));
    repository::record_event(tx, purpose.event_type(), &request_id, &Json::Object(payload)).map_err(http_kit::db_error)
}

/// Whose token this is, once used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Used {
    pub user_id: String,
    /// The address the link was sent to.
    pub email: String,
}

/// Use a token: `None` when it is unknown, expired, already used, or for
/// another purpose. Single use even under concurrency (one conditional
/// `UPDATE`). The outbox row that carried it is scrubbed of the link.
pub fn consume(tx: &dyn Db, purpose: Purpose, token: &str, now: i64) -> Result<Option<Used>, DbError> {
    let rows = tx.query(
        "UPDATE account_tokens SET used_at = ? \
         WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ? \
         RETURNING user_id, email, outbox_event, outbox_key",
        &[now.into(), tokens::hash_secret(token).into(), purpose.as_str().into(), now.into()],
    )?;
    let Some(r) = rows.first() else { return Ok(None) };
    let used = Used { user_id: r.text("user_id")?, email: r.text("email")? };
    scrub(tx, &r.text("outbox_event")?, &r.text("outbox_key")?)?;
    Ok(Some(used))
}

/// Whose token this is, if it can still be used, without using it (to
/// check the rest of a request before [`consume`] decides).
pub fn peek(db: &dyn Db, purpose: Purpose, token: &str, now: i64) -> Result<Option<Used>, DbError> {
    let rows = db.query(
        "SELECT user_id, email FROM account_tokens WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
        &[tokens::hash_secret(token).into(), purpose.as_str().into(), now.into()],
    )?;
    rows.first().map(|r| Ok(Used { user_id: r.text("user_id")?, email: r.text("email")? })).transpose()
}

/// End every unused token of this purpose for the user (a newer one was
/// issued, or the password was just reset), scrubbing their links.
pub fn retire_unused(tx: &dyn Db, purpose: Purpose, user_id: &str, now: i64) -> Result<(), DbError> {
    let rows = tx.query(
        "UPDATE account_tokens SET used_at = ? WHERE user_id = ? AND purpose = ? AND used_at IS NULL RETURNING outbox_event, outbox_key",
        &[now.into(), user_id.into(), purpose.as_str().into()],
    )?;
    for r in rows.iter() {
        scrub(tx, &r.text("outbox_event")?, &r.text("outbox_key")?)?;
    }
    Ok(())
}

/// Remove the link from an outbox row's payload.
fn scrub(tx: &dyn Db, outbox_event: &str, outbox_key: &str) -> Result<(), DbError> {
    let rows = tx.query("SELECT payload FROM outbox WHERE event_type = ? AND aggregate_id = ?", &[outbox_event.into(), outbox_key.into()])?;
    let Some(r) = rows.first() else { return Ok(()) };
    let mut payload: Json = serde_json::from_str(&r.text("payload")?).unwrap_or(Json::Null);
    if let Some(map) = payload.as_object_mut() {
        if map.remove("secret").is_none() {
            return Ok(());
        }
    }
    tx.execute(
        "UPDATE outbox SET payload = ? WHERE event_type = ? AND aggregate_id = ?",
        &[payload.to_string().into(), outbox_event.into(), outbox_key.into()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::{insert_user, UserRecord};
    use http_kit::auth::Role;
    use storage::native::MemDb;

    fn setup() -> (MemDb, PublicUser) {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let u = UserRecord {
            id: "u1".into(),
            email: "a@b.co".into(),
            password_hash: "h".into(),
            first_name: "A".into(),
            last_name: "B".into(),
            role: Role::Customer,
            created_at: "t".into(),
            email_verified_at: None,
            role_decided_at: None,
            phone: None,
            sms_consent_at: None,
            marketing_consent_at: None,
        };
        insert_user(&db, &u).unwrap();
        (db, u.public())
    }

    /// The token of the newest event of this purpose, as the email has it.
    fn sent_token(db: &MemDb, purpose: Purpose) -> Option<String> {
        let rows = db.query("SELECT payload FROM outbox WHERE event_type = ? ORDER BY id DESC", &[purpose.event_type().into()]).unwrap();
        let payload: Json = serde_json::from_str(&rows.first()?.text("payload").unwrap()).unwrap();
        payload["secret"]["token"].as_str().map(str::to_string)
    }

    #[test]
    fn a_token_works_once_and_only_for_its_purpose() {
        let (db, user) = setup();
        send(&db, Purpose::VerifyEmail, &user, "https://shop.test/", 1000, Purpose::VerifyEmail.default_ttl_secs()).unwrap();
        let token = sent_token(&db, Purpose::VerifyEmail).unwrap();
        let payload = db.query("SELECT payload FROM outbox", &[]).unwrap().first().unwrap().text("payload").unwrap();
        assert!(payload.contains(&format!("https://shop.test/account/verify-email?token={token}")), "{payload}");
        let stored = db.query("SELECT token_hash FROM account_tokens", &[]).unwrap().first().unwrap().text("token_hash").unwrap();
        assert_ne!(stored, token, "stored hashed");
        assert_eq!(consume(&db, Purpose::PasswordReset, &token, 1001).unwrap(), None, "wrong purpose");
        assert_eq!(consume(&db, Purpose::VerifyEmail, &token, 1001).unwrap(), Some(Used { user_id: "u1".into(), email: "a@b.co".into() }));
        assert_eq!(consume(&db, Purpose::VerifyEmail, &token, 1002).unwrap(), None, "single use");
        assert_eq!(sent_token(&db, Purpose::VerifyEmail), None, "the outbox no longer holds the link");
    }

    #[test]
    fn tokens_expire() {
        let (db, user) = setup();
        send(&db, Purpose::PasswordReset, &user, "http://x", 1000, Purpose::PasswordReset.default_ttl_secs()).unwrap();
        let token = sent_token(&db, Purpose::PasswordReset).unwrap();
        assert_eq!(consume(&db, Purpose::PasswordReset, &token, 1000 + 3600).unwrap(), None);
    }

    #[test]
    fn a_new_reset_link_replaces_the_old_one() {
        let (db, user) = setup();
        send(&db, Purpose::PasswordReset, &user, "http://x", 1000, Purpose::PasswordReset.default_ttl_secs()).unwrap();
        let first = sent_token(&db, Purpose::PasswordReset).unwrap();
        send(&db, Purpose::PasswordReset, &user, "http://x", 1001, Purpose::PasswordReset.default_ttl_secs()).unwrap();
        let second = sent_token(&db, Purpose::PasswordReset).unwrap();
        assert_eq!(consume(&db, Purpose::PasswordReset, &first, 1002).unwrap(), None);
        assert!(consume(&db, Purpose::PasswordReset, &second, 1002).unwrap().is_some());
        let with_links = db.query("SELECT payload FROM outbox", &[]).unwrap().iter().filter(|r| r.text("payload").unwrap().contains("secret")).count();
        assert_eq!(with_links, 0);
    }
}
