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
}

/// The user as every API response shows it: no hash, no token material.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PublicUser {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub created_at: String,
}

impl UserRecord {
    pub fn public(&self) -> PublicUser {
        PublicUser {
            id: self.id.clone(),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            role: self.role,
            created_at: self.created_at.clone(),
        }
    }
}

const USER_COLUMNS: &str = "id, email, password_hash, first_name, last_name, role, created_at";

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
    })
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
    let rows = db.query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"), &[email.into()])?;
    rows.first().map(|r| user_from_row(&r)).transpose()
}

pub fn find_by_id(db: &dyn Db, id: &str) -> Result<Option<UserRecord>, DbError> {
    let rows = db.query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"), &[id.into()])?;
    rows.first().map(|r| user_from_row(&r)).transpose()
}

pub fn update_names(db: &dyn Db, id: &str, first: &str, last: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE users SET first_name = ?, last_name = ?, updated_at = ? WHERE id = ?",
        &[first.into(), last.into(), now.into(), id.into()],
    )
}

pub fn update_password_hash(db: &dyn Db, id: &str, hash: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
        &[hash.into(), now.into(), id.into()],
    )
}

pub fn set_role(db: &dyn Db, id: &str, role: Role, now: &str) -> Result<(), DbError> {
    db.execute("UPDATE users SET role = ?, updated_at = ? WHERE id = ?", &[role.as_str().into(), now.into(), id.into()])
}

/// One page of accounts, newest first, optionally filtered by an email substring.
pub fn list_users(db: &dyn Db, email_like: Option<&str>, limit: u32, offset: i64) -> Result<(Vec<UserRecord>, i64), DbError> {
    // Case-insensitive on both (emails are stored lower-case anyway).
    let (filter, mut params): (String, Vec<Value>) = match email_like {
        Some(p) => (format!("WHERE email {} ? ESCAPE '\\'", db.dialect().like_ignoring_case()), vec![p.into()]),
        None => (String::new(), Vec::new()),
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

pub fn revoke_session(db: &dyn Db, session_id: &str, reason: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
        &[now.into(), reason.into(), session_id.into()],
    )
}

/// The session an access token was issued for.
pub fn session_of_access_token(db: &dyn Db, jti: &str) -> Result<Option<String>, DbError> {
    let rows = db.query("SELECT session_id FROM refresh_tokens WHERE access_jti = ?", &[jti.into()])?;
    rows.first().map(|r| r.text("session_id")).transpose()
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
    storage::outbox::record(db, event_type, key, &payload.to_string(), &clock::now_rfc3339())
}

// ---------------------------------------------------------------- login failures

/// Failures counted for a key in its current window: (failures, window start).
pub fn failures(db: &dyn Db, key: &str) -> Result<Option<(i64, i64)>, DbError> {
    let rows = db.query("SELECT failures, window_started_at FROM login_failures WHERE key = ?", &[key.into()])?;
    rows.first().map(|r| Ok((r.int("failures")?, r.int("window_started_at")?))).transpose()
}

/// Count one failure; a window older than `window_secs` starts over.
pub fn record_failure(db: &dyn Db, key: &str, now: i64, window_secs: i64) -> Result<(), DbError> {
    let stale_before = now - window_secs;
    db.execute(
        "INSERT INTO login_failures (key, window_started_at, failures) VALUES (?, ?, 1) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN login_failures.window_started_at <= ? THEN 1 ELSE login_failures.failures + 1 END, \
           window_started_at = CASE WHEN login_failures.window_started_at <= ? THEN excluded.window_started_at \
                               ELSE login_failures.window_started_at END",
        &[key.into(), now.into(), stale_before.into(), stale_before.into()],
    )
}

pub fn clear_failures(db: &dyn Db, key: &str) -> Result<(), DbError> {
    db.execute("DELETE FROM login_failures WHERE key = ?", &[key.into()])
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
        }
    }


    #[test]
    fn email_search_is_ilike_on_postgres() {
        let db = storage::native::Recorder::postgres();
        list_users(&db, Some("%ann%"), 20, 0).unwrap();
        assert!(db.statements().iter().all(|s| s.contains("WHERE email ILIKE ? ESCAPE '\\'")), "{:?}", db.statements());
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
    fn failure_windows_count_and_restart() {
        let db = db();
        record_failure(&db, "email:a", 1000, 900).unwrap();
        record_failure(&db, "email:a", 1100, 900).unwrap();
        assert_eq!(failures(&db, "email:a").unwrap(), Some((2, 1000)));
        record_failure(&db, "email:a", 1900, 900).unwrap();
        assert_eq!(failures(&db, "email:a").unwrap(), Some((1, 1900)), "window restarted");
        clear_failures(&db, "email:a").unwrap();
        assert_eq!(failures(&db, "email:a").unwrap(), None);
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
