//! The users service's SQL, through the storage trait only.

use http_kit::auth::Role;
use serde::Serialize;
use storage::{Db, DbError, Row, Value};

/// An account as stored. `password_hash` never leaves this service: the
/// public view is [`PublicUser`].
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub created_at: String,
    /// When the owner of `email` proved it (a verification link was used).
    pub email_verified_at: Option<String>,
    /// When the `admin_emails` rule granted admin or an admin set the role;
    /// the rule never applies after that.
    pub role_decided_at: Option<String>,
    /// E.164 phone number for SMS, if the customer gave one.
    pub phone: Option<String>,
    /// When the customer consented to SMS about their orders (None: no consent).
    pub sms_consent_at: Option<String>,
    /// When the customer opted in to promotional email (None: no consent).
    pub marketing_consent_at: Option<String>,
}

/// The user as every API response shows it: no hash, no token material.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PublicUser {
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub created_at: String,
    pub phone: Option<String>,
    pub sms_consent_at: Option<String>,
    pub marketing_consent_at: Option<String>,
}

impl UserRecord {
    pub fn public(&self) -> PublicUser {
        PublicUser {
            id: self.id.clone(),
            email: self.email.clone(),
            email_verified: self.email_verified_at.is_some(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            role: self.role,
            created_at: self.created_at.clone(),
            phone: self.phone.clone(),
            sms_consent_at: self.sms_consent_at.clone(),
            marketing_consent_at: self.marketing_consent_at.clone(),
        }
    }
}

const USER_COLUMNS: &str = "id, email, password_hash, first_name, last_name, role, created_at, email_verified_at, role_decided_at, phone, sms_consent_at, marketing_consent_at";

fn user_from_row(r: &Row<'_>) -> Result<UserRecord, DbError> {
    let role = r.text("role")?;
    Ok(UserRecord {
        id: r.text("id")?,
        email: r.text("email")?,
        password_hash: r.text("password_hash")?,
        first_name: r.text("first_name")?,
        last_name: r.text("last_name")?,
        role: Role::parse(&role).ok_or_else(|| DbError::Other(format!("unknown role `{role}` stored")))?,
        created_at: r.text("created_at")?,
        email_verified_at: r.opt_text("email_verified_at")?,
        role_decided_at: r.opt_text("role_decided_at")?,
        phone: r.opt_text("phone")?,
        sms_consent_at: r.opt_text("sms_consent_at")?,
        marketing_consent_at: r.opt_text("marketing_consent_at")?,
    })
}

/// Store the account's phone number and SMS consent time (both `None`
/// removes them).
pub fn set_phone(db: &dyn Db, id: &str, phone: Option<&str>, sms_consent_at: Option<&str>, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE users SET phone = ?, sms_consent_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
        &[phone.into(), sms_consent_at.into(), now.into(), id.into()],
    )
    .map(|_| ())
}

/// Set (`Some(time)`) or clear the account's promotional-email consent.
/// False when there is no such live account.
pub fn set_marketing_consent(db: &dyn Db, id: &str, consent_at: Option<&str>, now: &str) -> Result<bool, DbError> {
    let rows = db.query(
        "UPDATE users SET marketing_consent_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING id",
        &[consent_at.into(), now.into(), id.into()],
    )?;
    Ok(!rows.is_empty())
}

/// How many customers consent to promotions now, from a confirmed address
/// (found in review: anyone can register someone else's address and opt
/// it in). Read outside any write transaction: it reads every account.
pub fn consenting_count(db: &dyn Db) -> Result<i64, DbError> {
    let counted = db.query(
        "SELECT COUNT(*) AS n FROM users WHERE marketing_consent_at IS NOT NULL AND email_verified_at IS NOT NULL AND deleted_at IS NULL",
        &[],
    )?;
    Ok(counted.first().map(|r| r.int("n")).transpose()?.unwrap_or(0))
}

/// Record a promotion (to `recipients` customers, [`consenting_count`]) and
/// one `promotion.send` outbox event naming it and no customer, in the
/// caller's transaction: the notifications service fans it out, a page of
/// customers at a time, to those who consent by `now` from a confirmed
/// address. (It wrote one event per customer until found in review: a long
/// list made this one long write, which held up registrations, resets and
/// deletions.)
#[allow(clippy::too_many_arguments)]
pub fn record_promotion(db: &dyn Db, id: &str, subject: &str, html: &str, text: &str, admin_id: &str, now: &str, recipients: i64) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO promotions (id, subject, html, text, recipients, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        &[id.into(), subject.into(), html.into(), text.into(), recipients.into(), admin_id.into(), now.into()],
    )?;
    record_event(db, "promotion.send", id, &serde_json::json!({ "promotion_id": id }))
}

/// Insert a new account. A duplicate email is `DbError::Constraint`.
pub fn insert_user(db: &dyn Db, u: &UserRecord) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO users (id, email, password_hash, first_name, last_name, role, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            u.id.as_str().into(),
            u.email.as_str().into(),
            u.password_hash.as_str().into(),
            u.first_name.as_str().into(),
            u.last_name.as_str().into(),
            u.role.as_str().into(),
            u.created_at.as_str().into(),
            u.created_at.as_str().into(),
        ],
    )
}

pub fn find_by_email(db: &dyn Db, email: &str) -> Result<Option<UserRecord>, DbError> {
    let rows = db.query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ? AND deleted_at IS NULL"), &[email.into()])?;
    rows.first().map(|r| user_from_row(&r)).transpose()
}

pub fn find_by_id(db: &dyn Db, id: &str) -> Result<Option<UserRecord>, DbError> {
    let rows = db.query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ? AND deleted_at IS NULL"), &[id.into()])?;
    rows.first().map(|r| user_from_row(&r)).transpose()
}

/// Run `UPDATE users SET {assignments} WHERE {condition}` and return the
/// one account it changed, as it now is (`None` when no row matched).
fn update_user(db: &dyn Db, assignments: &str, condition: &str, params: &[Value]) -> Result<Option<UserRecord>, DbError> {
    let rows = db.query(&format!("UPDATE users SET {assignments} WHERE {condition} RETURNING {USER_COLUMNS}"), params)?;
    rows.first().map(|r| user_from_row(&r)).transpose()
}

/// Change the names given (`None` keeps that one) in one statement, so two
/// edits of different names at once both land; the account as it is now,
/// or `None` when it is gone.
pub fn update_names(db: &dyn Db, id: &str, first: Option<&str>, last: Option<&str>, now: &str) -> Result<Option<UserRecord>, DbError> {
    update_user(
        db,
        "first_name = COALESCE(?, first_name), last_name = COALESCE(?, last_name), updated_at = ?",
        "id = ? AND deleted_at IS NULL",
        &[first.into(), last.into(), now.into(), id.into()],
    )
}

/// Lock the account's row for the rest of the transaction, if it is live
/// and its password hash is still `verified` (the one a password was just
/// checked against), and read it as it is now (its role may have changed
/// during the check). `None` when a reset, a change or a deletion came in
/// between: the check no longer speaks for the account (a portable
/// `SELECT ... FOR UPDATE`; on Postgres a concurrent change is waited for
/// and then seen).
pub fn lock_if_password_unchanged(tx: &dyn Db, id: &str, verified: &str) -> Result<Option<UserRecord>, DbError> {
    update_user(tx, "updated_at = updated_at", "id = ? AND password_hash = ? AND deleted_at IS NULL", &[id.into(), verified.into()])
}

/// Lock the live account's row for the rest of the transaction and read it
/// as it is now (a portable `SELECT ... FOR UPDATE`): `None` once it was
/// deleted, also by a deletion that committed after this request read it.
///
/// Requests that change an account's emailed tokens or counters lock its
/// row first, as a deletion does before it removes them, so on Postgres
/// the two take turns instead of waiting for each other in a cycle.
pub fn lock_live(tx: &dyn Db, id: &str) -> Result<Option<UserRecord>, DbError> {
    lock_live_where(tx, "id", id)
}

/// [`lock_live`] by email address: one statement whether or not an
/// account has it.
pub fn lock_live_by_email(tx: &dyn Db, email: &str) -> Result<Option<UserRecord>, DbError> {
    lock_live_where(tx, "email", email)
}

fn lock_live_where(tx: &dyn Db, column: &str, value: &str) -> Result<Option<UserRecord>, DbError> {
    update_user(tx, "updated_at = updated_at", &format!("{column} = ? AND deleted_at IS NULL"), &[value.into()])
}

pub fn update_password_hash(db: &dyn Db, id: &str, hash: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
        &[hash.into(), now.into(), id.into()],
    )
}

/// The ids of the live admin accounts, with their rows locked for the rest
/// of the transaction (a portable `SELECT ... FOR UPDATE`; on Postgres a
/// row another transaction just demoted is left out once that commits).
pub fn lock_admins(tx: &dyn Db) -> Result<Vec<String>, DbError> {
    tx.query("UPDATE users SET role = role WHERE role = 'admin' AND deleted_at IS NULL RETURNING id", &[])?
        .iter()
        .map(|r| r.text("id"))
        .collect()
}

/// An admin's decision on a role, changed or not: the `admin_emails` rule
/// no longer applies to this account afterwards. The account as it is now,
/// or `None` when there is no live account with this id.
pub fn set_role(db: &dyn Db, id: &str, role: Role, now: &str) -> Result<Option<UserRecord>, DbError> {
    update_user(
        db,
        "role = ?, role_decided_at = COALESCE(role_decided_at, ?), updated_at = ?",
        "id = ? AND deleted_at IS NULL",
        &[role.as_str().into(), now.into(), now.into(), id.into()],
    )
}

/// One page of accounts, newest first, optionally filtered by an email substring.
pub fn list_users(db: &dyn Db, email_like: Option<&str>, limit: u32, offset: i64) -> Result<(Vec<UserRecord>, i64), DbError> {
    // Case-insensitive on both (emails are stored lower-case anyway).
    let (filter, mut params): (String, Vec<Value>) = match email_like {
        Some(p) => (format!("WHERE deleted_at IS NULL AND email {} ? ESCAPE '\\'", db.dialect().like_ignoring_case()), vec![p.into()]),
        None => ("WHERE deleted_at IS NULL".to_string(), Vec::new()),
    };
    let total = db
        .query(&format!("SELECT COUNT(*) AS n FROM users {filter}"), &params)?
        .first()
        .map(|r| r.int("n"))
        .transpose()?
        .unwrap_or(0);
    params.push((limit as i64).into());
    params.push(offset.into());
    let rows = db.query(
        &format!("SELECT {USER_COLUMNS} FROM users {filter} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"),
        &params,
    )?;
    let users = rows.iter().map(|r| user_from_row(&r)).collect::<Result<_, _>>()?;
    Ok((users, total))
}

// ---------------------------------------------------------------- sessions

pub fn create_session(db: &dyn Db, session_id: &str, user_id: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)",
        &[session_id.into(), user_id.into(), now.into()],
    )
}

pub fn insert_refresh_token(
    db: &dyn Db,
    token_hash: &str,
    session_id: &str,
    access_jti: &str,
    issued_at: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, access_jti, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        &[token_hash.into(), session_id.into(), access_jti.into(), issued_at.into(), expires_at.into()],
    )
}

/// A presented refresh token, with its session's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub session_id: String,
    pub user_id: String,
    pub expires_at: i64,
    pub rotated: bool,
    pub session_revoked: bool,
}

pub fn find_refresh_token(db: &dyn Db, token_hash: &str) -> Result<Option<RefreshRecord>, DbError> {
    let rows = db.query(
        "SELECT t.session_id, s.user_id, t.expires_at, t.rotated_at, s.revoked_at \
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = ?",
        &[token_hash.into()],
    )?;
    rows.first()
        .map(|r| {
            Ok(RefreshRecord {
                session_id: r.text("session_id")?,
                user_id: r.text("user_id")?,
                expires_at: r.int("expires_at")?,
                rotated: r.opt_int("rotated_at")?.is_some(),
                session_revoked: r.opt_text("revoked_at")?.is_some(),
            })
        })
        .transpose()
}

/// Mark a token rotated. False when it already was (a concurrent rotation won).
pub fn mark_rotated(db: &dyn Db, token_hash: &str, now: i64) -> Result<bool, DbError> {
    let rows = db.query(
        "UPDATE refresh_tokens SET rotated_at = ? WHERE token_hash = ? AND rotated_at IS NULL RETURNING token_hash",
        &[now.into(), token_hash.into()],
    )?;
    Ok(!rows.is_empty())
}

/// Lock the session for the caller's transaction if it is not revoked
/// (false: revoked, or gone). A refresh takes it before rotating, so on
/// Postgres a revocation committing meanwhile is either seen here or waits
/// for the refresh (found in review: the refresh read the session without
/// a lock, and a token pair could be issued after a password reset, a
/// sign-out or a deletion had revoked it). On SQLite the write transaction
/// already excludes it.
pub fn lock_live_session(db: &dyn Db, session_id: &str) -> Result<bool, DbError> {
    Ok(!db.query("UPDATE sessions SET id = id WHERE id = ? AND revoked_at IS NULL RETURNING id", &[session_id.into()])?.is_empty())
}

pub fn revoke_session(db: &dyn Db, session_id: &str, reason: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
        &[now.into(), reason.into(), session_id.into()],
    )
}

/// Whether the access token `jti` belongs to a session of `user_id` that
/// is still live (not signed out, nor ended by a password change, reset or
/// deletion).
pub fn token_session_live(db: &dyn Db, user_id: &str, jti: &str) -> Result<bool, DbError> {
    Ok(!db
        .query(
            "SELECT s.id FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
             WHERE rt.access_jti = ? AND s.user_id = ? AND s.revoked_at IS NULL",
            &[jti.into(), user_id.into()],
        )?
        .is_empty())
}

/// The session an access token was issued for.
pub fn session_of_access_token(db: &dyn Db, jti: &str) -> Result<Option<String>, DbError> {
    let rows = db.query("SELECT session_id FROM refresh_tokens WHERE access_jti = ?", &[jti.into()])?;
    rows.first().map(|r| r.text("session_id")).transpose()
}

/// A user's sessions (sign-ins), newest first, for the data export.
pub fn sessions_of(db: &dyn Db, user_id: &str) -> Result<serde_json::Value, DbError> {
    let rows = db.query("SELECT created_at, revoked_at, revoked_reason FROM sessions WHERE user_id = ? ORDER BY created_at DESC, id", &[user_id.into()])?;
    rows.iter()
        .map(|r| {
            Ok(serde_json::json!({
                "signed_in_at": r.text("created_at")?,
                "revoked_at": r.opt_text("revoked_at")?,
                "revoked_reason": r.opt_text("revoked_reason")?,
            }))
        })
        .collect::<Result<Vec<_>, DbError>>()
        .map(serde_json::Value::Array)
}

/// Revoke every live session of a user except `keep` (if any).
pub fn revoke_other_sessions(db: &dyn Db, user_id: &str, keep: Option<&str>, reason: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = ? \
         WHERE user_id = ? AND revoked_at IS NULL AND id <> COALESCE(?, '')",
        &[now.into(), reason.into(), user_id.into(), keep.into()],
    )
}

// ---------------------------------------------------------------- outbox

/// Append a domain event for the notifications service, in the caller's
/// transaction (idempotent per type and key).
pub fn record_event(db: &dyn Db, event_type: &str, key: &str, payload: &serde_json::Value) -> Result<(), DbError> {
    http_kit::outbox::record(db, event_type, key, payload)
}

/// Record that the user's password changed (the "password changed" email),
/// in the caller's transaction. Each change is its own event.
pub fn record_password_changed(db: &dyn Db, user: &UserRecord, changed_at: &str) -> Result<(), DbError> {
    let key = format!("{}:{}", user.id, clock::unix_millis());
    record_event(db, "user.password_changed", &key, &serde_json::json!({ "user": user.public(), "changed_at": changed_at }))
}

// ---------------------------------------------------------------- deletion

/// The email a deleted account is left with: unique, never deliverable
/// (`.invalid` is reserved), and not the owner's.
pub fn erased_email(user_id: &str) -> String {
    format!("deleted+{user_id}@erased.invalid")
}

/// Erase an account's personal data in the caller's transaction: the
/// row stays (orders refer to its id) with an unusable password, no names
/// and [`erased_email`]; addresses, emailed tokens and its counters go;
/// every session is revoked; its outbox events keep only the user id.
/// False when the account was already deleted.
pub fn erase_account(db: &dyn Db, user: &UserRecord, now: &str) -> Result<bool, DbError> {
    let erased = db.query(
        "UPDATE users SET email = ?, password_hash = '!', first_name = '', last_name = '', email_verified_at = NULL, \
         phone = NULL, sms_consent_at = NULL, marketing_consent_at = NULL, \
         role = 'customer', role_decided_at = COALESCE(role_decided_at, ?), deleted_at = ?, updated_at = ? \
         WHERE id = ? AND deleted_at IS NULL RETURNING id",
        &[erased_email(&user.id).into(), now.into(), now.into(), now.into(), user.id.as_str().into()],
    )?;
    if erased.is_empty() {
        return Ok(false);
    }
    db.execute("DELETE FROM addresses WHERE user_id = ?", &[user.id.as_str().into()])?;
    db.execute("DELETE FROM account_tokens WHERE user_id = ?", &[user.id.as_str().into()])?;
    clear_email_counters(db, &user.email, clock::unix_now())?;
    for key in [format!("reset:email:{}", user.email), format!("verify:{}", user.id)] {
        clear(db, Counter::Requests, &key)?;
    }
    revoke_all_sessions(db, &user.id, "account_deleted", now)?;
    // Events about the account (registration, password changes, links):
    // only the id is left.
    // Only rows that mention the id are read (it is a UUID: no LIKE wildcards).
    let rows = db.query("SELECT id, payload FROM outbox WHERE payload LIKE ?", &[format!("%{}%", user.id).into()])?;
    for r in rows.iter() {
        let payload: serde_json::Value = serde_json::from_str(&r.text("payload")?).unwrap_or(serde_json::Value::Null);
        if payload["user"]["id"] == user.id.as_str() {
            let kept = serde_json::json!({ "user": { "id": user.id }, "erased": true });
            db.execute("UPDATE outbox SET payload = ? WHERE id = ?", &[kept.to_string().into(), r.int("id")?.into()])?;
        }
    }
    record_event(db, "user.deleted", &user.id, &serde_json::json!({ "user_id": user.id, "deleted_at": now }))?;
    Ok(true)
}

// ---------------------------------------------------------------- counters

/// A table of fixed-window counters: failed logins, or emails requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// `login_failures`: wrong passwords per `email:` and `client:` key.
    LoginFailures,
    /// `request_counts`: link emails asked for per key.
    Requests,
}

impl Counter {
    /// The table the counts are kept in.
    pub fn table_name(self) -> &'static str {
        self.table().0
    }

    fn table(self) -> (&'static str, &'static str) {
        match self {
            Self::LoginFailures => ("login_failures", "failures"),
            Self::Requests => ("request_counts", "requests"),
        }
    }
}

/// What is counted for a key in its current window: (count, window start).
pub fn count(db: &dyn Db, counter: Counter, key: &str) -> Result<Option<(i64, i64)>, DbError> {
    let (t, c) = counter.table();
    let rows = db.query(&format!("SELECT {c} AS n, window_started_at FROM {t} WHERE key = ?"), &[key.into()])?;
    rows.first().map(|r| Ok((r.int("n")?, r.int("window_started_at")?))).transpose()
}

/// Take one of `max` slots in the key's window, in one statement, so
/// concurrent takers can never exceed `max` between them: the upsert's
/// condition is checked against the row as it is when the write happens
/// (SQLite runs writes one at a time; Postgres re-checks the locked row).
/// A window older than `window_secs` starts over. `Ok(None)` when a slot
/// was taken, `Ok(Some(seconds))` until the window ends when none is left.
pub fn take_slot(db: &dyn Db, counter: Counter, key: &str, now: i64, window_secs: i64, max: i64) -> Result<Option<i64>, DbError> {
    let (t, c) = counter.table();
    let stale_before = now - window_secs;
    let taken = db.query(
        &format!(
            "INSERT INTO {t} (key, window_started_at, {c}) VALUES (?, ?, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               {c} = CASE WHEN {t}.window_started_at <= ? THEN 1 ELSE {t}.{c} + 1 END, \
               window_started_at = CASE WHEN {t}.window_started_at <= ? THEN excluded.window_started_at \
                                   ELSE {t}.window_started_at END \
             WHERE {t}.window_started_at <= ? OR {t}.{c} < ? \
             RETURNING {c}"
        ),
        &[key.into(), now.into(), stale_before.into(), stale_before.into(), stale_before.into(), max.into()],
    )?;
    if !taken.is_empty() {
        return Ok(None);
    }
    let started = count(db, counter, key)?.map(|(_, s)| s).unwrap_or(now);
    Ok(Some((started + window_secs - now).max(1)))
}

/// Give back a slot taken by [`take_slot`] (the attempt turned out fine).
pub fn give_back_slot(db: &dyn Db, counter: Counter, key: &str) -> Result<(), DbError> {
    let (t, c) = counter.table();
    db.execute(&format!("UPDATE {t} SET {c} = {c} - 1 WHERE key = ? AND {c} > 0"), &[key.into()])
}

/// Forget a key's count.
pub fn clear(db: &dyn Db, counter: Counter, key: &str) -> Result<(), DbError> {
    let (t, _) = counter.table();
    db.execute(&format!("DELETE FROM {t} WHERE key = ?"), &[key.into()])
}

/// Forget every failed-sign-in count of an email: its own, and those per
/// client address (`pair:<email>|<ip>`). Counts whose window ended a day
/// ago go too: nothing else removes them, and this reads the table.
pub fn clear_email_counters(db: &dyn Db, email: &str, now: i64) -> Result<(), DbError> {
    let (own, per_client) = (format!("email:{email}"), format!("pair:{email}|"));
    db.execute(
        "DELETE FROM login_failures WHERE key = ? OR substr(key, 1, length(?)) = ? OR window_started_at < ?",
        &[own.as_str().into(), per_client.as_str().into(), per_client.as_str().into(), (now - 86_400).into()],
    )
}

// ---------------------------------------------------------------- email proof and bootstrap

/// Mark the address proven, if the account still has it. Returns the
/// account as it now is (`None` when it has another address by now).
pub fn mark_email_verified(db: &dyn Db, user_id: &str, email: &str, now: &str) -> Result<Option<UserRecord>, DbError> {
    update_user(
        db,
        "email_verified_at = COALESCE(email_verified_at, ?), updated_at = ?",
        "id = ? AND email = ?",
        &[now.into(), now.into(), user_id.into(), email.into()],
    )
}

/// Whoever holds the account's password proved they own its address (a
/// verification followed while signed in to it, or a password reset).
pub fn mark_owner_proven(db: &dyn Db, user_id: &str, now: &str) -> Result<(), DbError> {
    db.execute("UPDATE users SET owner_proven_at = COALESCE(owner_proven_at, ?) WHERE id = ?", &[now.into(), user_id.into()])
}

/// A password reset: the address's owner takes the account from whoever
/// chose its password before. If that was never proven to be the owner
/// ([`mark_owner_proven`]), what they set could be someone else's: anyone
/// can register another person's address, add their own phone number and
/// address, and wait (found in review: after the owner's reset, order texts
/// went to that phone and checkout offered that address). So the phone
/// number, SMS and marketing consent and the address book are cleared.
/// Returns whether they were. In the reset's transaction, the account's
/// row locked.
pub fn claim_by_reset(db: &dyn Db, user_id: &str, now: &str) -> Result<bool, DbError> {
    let unproven = db.query(
        "UPDATE users SET phone = NULL, sms_consent_at = NULL, marketing_consent_at = NULL, updated_at = ? \
         WHERE id = ? AND owner_proven_at IS NULL RETURNING id",
        &[now.into(), user_id.into()],
    )?;
    if unproven.is_empty() {
        return Ok(false);
    }
    db.execute("DELETE FROM addresses WHERE user_id = ?", &[user_id.into()])?;
    Ok(true)
}

/// Grant admin through the `admin_emails` rule: only to a proven address,
/// and only while no role was decided for the account (a demotion sticks).
/// True when granted.
pub fn grant_bootstrap_admin(db: &dyn Db, user_id: &str, now: &str) -> Result<bool, DbError> {
    let rows = db.query(
        "UPDATE users SET role = 'admin', role_decided_at = ?, updated_at = ? \
         WHERE id = ? AND email_verified_at IS NOT NULL AND role_decided_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM admin_rule_spent s WHERE s.email = users.email) RETURNING id",
        &[now.into(), now.into(), user_id.into()],
    )?;
    Ok(!rows.is_empty())
}

/// The `admin_emails` rule is spent for this (listed) address: its account,
/// whose role was decided, is being deleted (see `admin_rule_spent`).
pub fn spend_admin_rule(db: &dyn Db, email: &str, now: &str) -> Result<(), DbError> {
    db.execute("INSERT INTO admin_rule_spent (email, spent_at) VALUES (?, ?) ON CONFLICT (email) DO NOTHING", &[email.into(), now.into()])
}

/// Revoke every live session of a user.
pub fn revoke_all_sessions(db: &dyn Db, user_id: &str, reason: &str, now: &str) -> Result<(), DbError> {
    revoke_other_sessions(db, user_id, None, reason, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    fn db() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        db
    }

    fn user(id: &str, email: &str) -> UserRecord {
        UserRecord {
            id: id.into(),
            email: email.into(),
            password_hash: "h".into(),
            first_name: "A".into(),
            last_name: "B".into(),
            role: Role::Customer,
            created_at: format!("2026-01-01T00:00:0{}Z", id.len() % 10),
            email_verified_at: None,
            role_decided_at: None,
            phone: None,
            sms_consent_at: None,
            marketing_consent_at: None,
        }
    }


    #[test]
    fn email_search_is_ilike_on_postgres() {
        let db = storage::native::Recorder::postgres();
        list_users(&db, Some("%ann%"), 20, 0).unwrap();
        assert!(db.statements().iter().all(|s| s.contains("email ILIKE ? ESCAPE '\\'")), "{:?}", db.statements());
    }

    #[test]
    fn a_password_check_speaks_for_the_account_only_while_its_hash_is_unchanged() {
        let db = db();
        insert_user(&db, &user("u1", "a@b.co")).unwrap();
        assert!(lock_if_password_unchanged(&db, "u1", "h").unwrap().is_some());
        // A reset committed between the check and the session.
        update_password_hash(&db, "u1", "h2", "t").unwrap();
        assert!(lock_if_password_unchanged(&db, "u1", "h").unwrap().is_none());
        // A demotion committed during the check: the session gets the role
        // as it is now.
        set_role(&db, "u1", Role::Admin, "t").unwrap();
        assert_eq!(lock_if_password_unchanged(&db, "u1", "h2").unwrap().map(|u| u.role), Some(Role::Admin));
        db.execute("UPDATE users SET deleted_at = 't' WHERE id = 'u1'", &[]).unwrap();
        assert!(lock_if_password_unchanged(&db, "u1", "h2").unwrap().is_none(), "a deleted account makes no session");
        assert!(lock_admins(&db).unwrap().is_empty());
    }

    #[test]
    fn duplicate_emails_are_constraint_errors() {
        let db = db();
        insert_user(&db, &user("u1", "a@b.co")).unwrap();
        assert!(matches!(insert_user(&db, &user("u2", "a@b.co")), Err(DbError::Constraint(_))));
    }

    #[test]
    fn rotation_happens_once() {
        let db = db();
        insert_user(&db, &user("u1", "a@b.co")).unwrap();
        create_session(&db, "s1", "u1", "now").unwrap();
        insert_refresh_token(&db, "h1", "s1", "j1", 0, 100).unwrap();
        assert!(mark_rotated(&db, "h1", 5).unwrap());
        assert!(!mark_rotated(&db, "h1", 6).unwrap());
        let rec = find_refresh_token(&db, "h1").unwrap().unwrap();
        assert!(rec.rotated && !rec.session_revoked);
        assert_eq!(session_of_access_token(&db, "j1").unwrap().as_deref(), Some("s1"));
    }

    #[test]
    fn revoking_other_sessions_keeps_the_current_one() {
        let db = db();
        insert_user(&db, &user("u1", "a@b.co")).unwrap();
        for (s, h) in [("s1", "h1"), ("s2", "h2"), ("s3", "h3")] {
            create_session(&db, s, "u1", "now").unwrap();
            insert_refresh_token(&db, h, s, &format!("j{s}"), 0, 100).unwrap();
        }
        revoke_other_sessions(&db, "u1", Some("s2"), "password_changed", "now").unwrap();
        let revoked = |h: &str| find_refresh_token(&db, h).unwrap().unwrap().session_revoked;
        assert!(revoked("h1") && !revoked("h2") && revoked("h3"));
        revoke_other_sessions(&db, "u1", None, "x", "now").unwrap();
        assert!(revoked("h2"));
    }

    #[test]
    fn only_a_live_session_is_locked_for_a_refresh() {
        let db = db();
        insert_user(&db, &user("u1", "a@b.co")).unwrap();
        create_session(&db, "s1", "u1", "now").unwrap();
        assert!(lock_live_session(&db, "s1").unwrap());
        revoke_session(&db, "s1", "logout", "now").unwrap();
        assert!(!lock_live_session(&db, "s1").unwrap() && !lock_live_session(&db, "nope").unwrap());
    }

    #[test]
    fn slots_are_taken_up_to_the_limit_and_windows_restart() {
        let db = db();
        for c in [Counter::LoginFailures, Counter::Requests] {
            assert_eq!(take_slot(&db, c, "email:a", 1000, 900, 2).unwrap(), None);
            assert_eq!(take_slot(&db, c, "email:a", 1100, 900, 2).unwrap(), None);
            assert_eq!(count(&db, c, "email:a").unwrap(), Some((2, 1000)));
            assert_eq!(take_slot(&db, c, "email:a", 1200, 900, 2).unwrap(), Some(700), "full until the window ends");
            assert_eq!(count(&db, c, "email:a").unwrap(), Some((2, 1000)), "a refused take counts nothing");
            give_back_slot(&db, c, "email:a").unwrap();
            assert_eq!(take_slot(&db, c, "email:a", 1200, 900, 2).unwrap(), None, "a slot given back can be taken");
            assert_eq!(take_slot(&db, c, "email:a", 1900, 900, 2).unwrap(), None);
            assert_eq!(count(&db, c, "email:a").unwrap(), Some((1, 1900)), "window restarted");
            clear(&db, c, "email:a").unwrap();
            assert_eq!(count(&db, c, "email:a").unwrap(), None);
        }
    }

    #[test]
    fn an_erased_account_keeps_only_its_id() {
        let db = db();
        let mut u = user("u1", "ann@b.co");
        u.first_name = "Ann".into();
        insert_user(&db, &u).unwrap();
        create_session(&db, "s1", "u1", "now").unwrap();
        insert_refresh_token(&db, "h1", "s1", "j1", 0, 100).unwrap();
        record_event(&db, "user.registered", "u1", &serde_json::json!({ "user": u.public() })).unwrap();
        take_slot(&db, Counter::LoginFailures, "email:ann@b.co", 0, 900, 5).unwrap();
        assert_eq!(lock_live(&db, "u1").unwrap().map(|u| u.first_name), Some("Ann".to_string()));
        assert!(erase_account(&db, &u, "t1").unwrap());
        assert!(!erase_account(&db, &u, "t2").unwrap(), "once");
        assert!(find_by_id(&db, "u1").unwrap().is_none() && find_by_email(&db, "ann@b.co").unwrap().is_none());
        // A request that read the account before the deletion finds it gone
        // when it locks it.
        assert!(lock_live(&db, "u1").unwrap().is_none() && lock_live_by_email(&db, "ann@b.co").unwrap().is_none());
        assert!(find_refresh_token(&db, "h1").unwrap().unwrap().session_revoked);
        assert_eq!(count(&db, Counter::LoginFailures, "email:ann@b.co").unwrap(), None);
        let row = db.query("SELECT email, first_name, password_hash FROM users WHERE id = 'u1'", &[]).unwrap();
        let r = row.first().unwrap();
        assert_eq!((r.text("email").unwrap(), r.text("first_name").unwrap(), r.text("password_hash").unwrap()), (erased_email("u1"), String::new(), "!".to_string()));
        let outbox: Vec<String> = db.query("SELECT payload FROM outbox", &[]).unwrap().iter().map(|r| r.text("payload").unwrap()).collect();
        assert!(outbox.iter().all(|p| !p.contains("ann@b.co") && !p.contains("Ann")), "{outbox:?}");
        assert!(list_users(&db, None, 10, 0).unwrap().0.is_empty(), "not listed");
        insert_user(&db, &user("u2", "ann@b.co")).expect("the address can register again");
    }

    #[test]
    fn bootstrap_admin_needs_a_proven_address_and_is_granted_once() {
        let db = db();
        insert_user(&db, &user("u1", "a@b.co")).unwrap();
        assert!(!grant_bootstrap_admin(&db, "u1", "t0").unwrap(), "unproven");
        assert!(mark_email_verified(&db, "u1", "other@b.co", "t1").unwrap().is_none(), "another address proves nothing");
        let u = mark_email_verified(&db, "u1", "a@b.co", "t1").unwrap().unwrap();
        assert_eq!(u.email_verified_at.as_deref(), Some("t1"));
        assert!(u.public().email_verified);
        assert_eq!(mark_email_verified(&db, "u1", "a@b.co", "t2").unwrap().unwrap().email_verified_at.as_deref(), Some("t1"), "kept");
        assert!(grant_bootstrap_admin(&db, "u1", "t3").unwrap());
        set_role(&db, "u1", Role::Customer, "t4").unwrap();
        assert!(!grant_bootstrap_admin(&db, "u1", "t5").unwrap(), "a demotion sticks");
        assert_eq!(find_by_id(&db, "u1").unwrap().unwrap().role, Role::Customer);
    }

    /// Found in review: an admin setting "customer" on an account that was
    /// a customer already changed nothing, so `admin_emails` still made it
    /// an admin later. Setting a role decides it, changed or not.
    #[test]
    fn setting_the_role_an_account_has_decides_it() {
        let db = db();
        insert_user(&db, &user("u1", "a@b.co")).unwrap();
        mark_email_verified(&db, "u1", "a@b.co", "t1").unwrap().unwrap();
        let u = set_role(&db, "u1", Role::Customer, "t2").unwrap().unwrap();
        assert_eq!(u.role, Role::Customer);
        assert!(!grant_bootstrap_admin(&db, "u1", "t3").unwrap(), "the admin's decision sticks");
        assert!(set_role(&db, "nobody", Role::Admin, "t4").unwrap().is_none());
    }

    #[test]
    fn a_spent_admin_rule_never_grants_again() {
        let db = db();
        insert_user(&db, &user("u1", "boss@shop.test")).unwrap();
        mark_email_verified(&db, "u1", "boss@shop.test", "t1").unwrap();
        spend_admin_rule(&db, "boss@shop.test", "t2").unwrap();
        spend_admin_rule(&db, "boss@shop.test", "t3").unwrap();
        assert!(!grant_bootstrap_admin(&db, "u1", "t4").unwrap());
    }

    #[test]
    fn names_change_one_at_a_time_without_undoing_the_other() {
        let db = db();
        insert_user(&db, &user("u1", "a@b.co")).unwrap();
        update_names(&db, "u1", Some("Ann"), None, "t1").unwrap().unwrap();
        let u = update_names(&db, "u1", None, Some("Lee"), "t2").unwrap().unwrap();
        assert_eq!((u.first_name.as_str(), u.last_name.as_str()), ("Ann", "Lee"), "the second edit read nothing stale");
        assert!(update_names(&db, "nobody", Some("X"), None, "t3").unwrap().is_none());
    }

    #[test]
    fn listing_filters_by_email() {
        let db = db();
        insert_user(&db, &user("u1", "ann@example.com")).unwrap();
        insert_user(&db, &user("u22", "bob@example.com")).unwrap();
        let (all, total) = list_users(&db, None, 10, 0).unwrap();
        assert_eq!((all.len(), total), (2, 2));
        let (some, total) = list_users(&db, Some("%ann%"), 10, 0).unwrap();
        assert_eq!((some.len(), total, some[0].email.as_str()), (1, 1, "ann@example.com"));
    }
}
