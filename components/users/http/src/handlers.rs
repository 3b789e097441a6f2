//! The users service's use cases, one function per endpoint: parse at the
//! edge, apply the rules, answer with the right status.

use users_core::account_tokens::{self, Purpose};
use users_core::domain::{Email, NewPassword, PersonName, PhoneNumber};
use users_core::login_limits::{self, LoginLimits};
use users_core::repository::{self, PublicUser, UserRecord};
use users_core::schema;
use users_core::tokens::{self, Signer, REFRESH_TOKEN_TTL_SECS};
use http_kit::auth::{Caller, Role, ACCESS_TOKEN_TTL_SECS};
use http_kit::{db_error, ApiError, Ctx, ErrorCode, HandlerResult, Pagination, Reply};
use serde::Deserialize;
use serde_json::json;
use text_input::FieldProblems;
use storage::{transaction, Db, DbError};

fn open() -> Result<storage::ServiceDb, ApiError> {
    schema::open_database().map_err(db_error)
}

/// Retention after a request that may have added counts or emailed links
/// (`users_core::retention`): a few ended ones go, in a transaction of
/// their own. A failure is left for the next such request.
pub(crate) fn tidy_counts_and_links(db: &dyn Db, login_window_secs: i64) {
    let _ = users_core::retention::tidy_counts_and_links(db, clock::unix_now(), login_window_secs);
}

/// [`tidy_counts_and_links`] for a request that did not read the login
/// limits itself.
pub(crate) fn tidy_counts_and_links_now(db: &dyn Db) {
    tidy_counts_and_links(db, LoginLimits::from_variables().window_secs);
}

/// Retention after a sign-in or refresh (a new refresh token): a few
/// refresh tokens a day past expiry go, with sessions left without one.
fn tidy_sessions(db: &dyn Db) {
    let _ = users_core::retention::tidy_sessions(db, clock::unix_now());
}

pub(crate) fn user_reply(status: u16, user: &UserRecord) -> Reply {
    Reply::json(status, &json!({ "user": user.public() }))
}

/// Emails listed in the `admin_emails` variable become admins once their
/// owner has proven the address (see [`after_proof`]).
pub(crate) fn is_bootstrap_admin(email: &Email) -> bool {
    spin_sdk::variables::get("admin_emails")
        .unwrap_or_default()
        .split(',')
        .filter_map(|e| Email::parse(e).ok())
        .any(|e| e == *email)
}

// ---------------------------------------------------------------- register

#[derive(Deserialize)]
struct RegisterBody {
    email: Option<String>,
    password: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    // Any other field, `role` included, is ignored: it can never grant anything.
}

pub fn register(ctx: &Ctx) -> HandlerResult {
    let body: RegisterBody = ctx.json()?;
    let mut errors = FieldProblems::default();
    let email = errors.check("email", Email::parse(body.email.as_deref().unwrap_or("")));
    let raw_password = body.password.unwrap_or_default();
    let password = errors.check(
        "password",
        NewPassword::parse(&raw_password, email.as_ref().map(|e| e.as_str()).unwrap_or("")),
    );
    let first = errors.check("first_name", PersonName::parse(body.first_name.as_deref().unwrap_or("")));
    let last = errors.check("last_name", PersonName::parse(body.last_name.as_deref().unwrap_or("")));
    errors.finish().map_err(ApiError::validation)?;
    let (Some(email), Some(password), Some(first), Some(last)) = (email, password, first, last) else {
        return Err(ApiError::internal("validated fields missing"));
    };

    let db = open()?;
    crate::accounts::reserve_registration(&db, ctx)?;
    if repository::find_by_email(&db, email.as_str()).map_err(db_error)?.is_some() {
        return Err(email_taken());
    }
    let hash = users_core::passwords::hash(password.expose()).map_err(ApiError::internal)?;
    // Every account starts as a customer: an `admin_emails` address becomes
    // admin only once its owner has proven it.
    let user = UserRecord {
        id: http_kit::ids::uuid_v4()?,
        email: email.as_str().to_string(),
        password_hash: hash,
        first_name: first.as_str().to_string(),
        last_name: last.as_str().to_string(),
        role: Role::Customer,
        created_at: clock::now_rfc3339(),
        email_verified_at: None,
        role_decided_at: None,
        phone: None,
        sms_consent_at: None,
        marketing_consent_at: None,
    };
    let storefront = account_tokens::storefront_url_from_variables();
    let inserted = transaction(&db, |tx| -> Result<(), ApiError> {
        match repository::insert_user(tx, &user) {
            Ok(()) => {}
            // Two registrations raced; the unique index decided.
            Err(DbError::Constraint(_)) => return Err(email_taken()),
            Err(e) => return Err(db_error(e)),
        }
        // The welcome email carries the first verification link.
        let ttl = Purpose::VerifyEmail.ttl_secs_from_variables();
        let mut payload =
            account_tokens::issue(tx, Purpose::VerifyEmail, &user.public(), &storefront, clock::unix_now(), ttl, ("user.registered", &user.id))?;
        payload.insert("user".into(), json!(user.public()));
        repository::record_event(tx, "user.registered", &user.id, &serde_json::Value::Object(payload)).map_err(db_error)
    });
    inserted?;
    http_kit::nudge::notifications();
    Ok(user_reply(201, &user).with_header("location", "/api/users/profile"))
}

fn email_taken() -> ApiError {
    ApiError::new(409, "email_taken", "an account with this email already exists")
}

// ---------------------------------------------------------------- login

#[derive(Deserialize)]
struct LoginBody {
    email: Option<String>,
    password: Option<String>,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(401, "invalid_credentials", "the email or password is incorrect")
}

pub fn login(ctx: &Ctx) -> HandlerResult {
    let body: LoginBody = ctx.json()?;
    let (Some(raw_email), Some(password)) = (body.email, body.password) else {
        return Err(ApiError::new(400, "invalid_request", "email and password are required"));
    };
    let signer = Signer::from_variables()?;
    let now = clock::unix_now();
    let limits = LoginLimits::from_variables();
    let client = client_of(ctx);
    // A malformed email cannot match an account, but it still costs a hash
    // and counts as a failure, like any other wrong credential.
    let email_key = Email::parse(&raw_email).map(|e| e.as_str().to_string()).unwrap_or_else(|_| raw_email.trim().to_lowercase());

    let db = open()?;
    let attempt = match login_limits::reserve(&db, &limits, &email_key, &client, now).map_err(db_error)? {
        Ok(attempt) => attempt,
        Err(wait) => return Err(too_many_attempts(wait)),
    };
    tidy_counts_and_links(&db, limits.window_secs);
    let user = repository::find_by_email(&db, &email_key).map_err(db_error)?;
    let verified = match &user {
        Some(u) => users_core::passwords::verify(&password, &u.password_hash),
        None => {
            users_core::passwords::waste_equal_time(&password);
            false
        }
    };
    let Some(checked) = user.filter(|_| verified) else {
        attempt.failed();
        return Err(invalid_credentials());
    };
    attempt.succeeded(&db).map_err(db_error)?;

    let session_id = http_kit::ids::uuid_v4()?;
    let now_text = clock::now_rfc3339();
    let (issued, user) = transaction(&db, |tx| -> Result<((String, String), UserRecord), ApiError> {
        // A password reset or change (which ends every session) or a
        // deletion that committed while the password was being checked
        // wins: no session is made from the old password. The account is
        // read again with its lock: a role changed during the check is the
        // one the tokens carry.
        let user = repository::lock_if_password_unchanged(tx, &checked.id, &checked.password_hash)
            .map_err(db_error)?
            .ok_or_else(invalid_credentials)?;
        // No `admin_emails` rule here (found in review): a password proves
        // nothing of the inbox, and a verification by link alone may have
        // been the inbox owner's click on an account someone else made.
        repository::create_session(tx, &session_id, &user.id, &now_text).map_err(db_error)?;
        Ok((issue_pair(tx, &signer, &session_id, &user, now)?, user))
    })?;
    tidy_sessions(&db);
    Ok(token_reply(issued, Some(user.public())))
}

/// The client address for per-client limits (see `trusted_proxy_hops`).
pub(crate) fn client_of(ctx: &Ctx) -> String {
    login_limits::client_address(
        // Spin's own, never a value the client sent under that name.
        ctx.spin_header("spin-client-addr"),
        ctx.header_list("x-forwarded-for").as_deref(),
        login_limits::trusted_proxy_hops_from_variables(),
    )
}

/// 429 for a password check refused by the limits.
pub(crate) fn too_many_attempts(wait: i64) -> ApiError {
    ApiError::of(ErrorCode::RateLimited, "too many failed password attempts; try again later")
        .with_header("retry-after", wait.to_string())
        .with_details(json!({ "retry_after_seconds": wait }))
}

/// Apply the `admin_emails` rule to `user` (in the caller's transaction):
/// a listed, proven address whose role nobody decided yet becomes admin.
pub(crate) fn apply_bootstrap_admin(tx: &dyn Db, user: &mut UserRecord, now: &str) -> Result<(), ApiError> {
    if bootstrap_applies(user) && repository::grant_bootstrap_admin(tx, &user.id, now).map_err(db_error)? {
        user.role = Role::Admin;
        user.role_decided_at = Some(now.to_string());
    }
    Ok(())
}

/// The `admin_emails` rule would grant admin to this account now: a listed,
/// proven address whose role nobody decided yet.
fn bootstrap_applies(user: &UserRecord) -> bool {
    user.role == Role::Customer
        && user.email_verified_at.is_some()
        && user.role_decided_at.is_none()
        && is_listed(&user.email)
}

/// A stored account address listed in `admin_emails`.
pub(crate) fn is_listed(email: &str) -> bool {
    Email::parse(email).is_ok_and(|e| is_bootstrap_admin(&e))
}

/// Store a new refresh token for the session and sign the matching access token.
fn issue_pair(tx: &dyn Db, signer: &Signer, session_id: &str, user: &UserRecord, now: i64) -> Result<(String, String), ApiError> {
    let jti = http_kit::ids::uuid_v4()?;
    let (refresh, hash) = tokens::new_refresh_token()?;
    repository::insert_refresh_token(tx, &hash, session_id, &jti, now, now + REFRESH_TOKEN_TTL_SECS).map_err(db_error)?;
    let access = signer.access_token(&user.id, user.role, user.email_verified_at.is_some(), &jti)?;
    Ok((access, refresh))
}

fn token_reply((access, refresh): (String, String), user: Option<PublicUser>) -> Reply {
    let mut body = json!({
        "accessToken": access,
        "refreshToken": refresh,
        "tokenType": "Bearer",
        "expiresIn": ACCESS_TOKEN_TTL_SECS,
    });
    if let Some(user) = user {
        body["user"] = json!(user);
    }
    // Tokens must never be cached by a browser or proxy.
    Reply::ok(&body).with_header("cache-control", "no-store")
}

// ---------------------------------------------------------------- refresh / logout

#[derive(Deserialize)]
struct RefreshBody {
    #[serde(rename = "refreshToken")]
    refresh_token: Option<String>,
}

fn refresh_token_of(ctx: &Ctx) -> Result<String, ApiError> {
    let body: RefreshBody = ctx.json()?;
    body.refresh_token
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| ApiError::new(400, "invalid_request", "refreshToken is required"))
}

fn invalid_refresh() -> ApiError {
    ApiError::new(401, "invalid_refresh_token", "the refresh token is invalid, expired or revoked; sign in again")
}

pub fn refresh(ctx: &Ctx) -> HandlerResult {
    let presented = refresh_token_of(ctx)?;
    let signer = Signer::from_variables()?;
    let hash = tokens::hash_refresh_token(&presented);
    let now = clock::unix_now();
    let db = open()?;
    // One write transaction: the check and the rotation cannot interleave
    // with a concurrent refresh of the same token.
    let outcome = transaction(&db, |tx| -> Result<Result<(String, String), ApiError>, ApiError> {
        let Some(rec) = repository::find_refresh_token(tx, &hash).map_err(db_error)? else {
            return Ok(Err(invalid_refresh()));
        };
        if rec.session_revoked || rec.expires_at <= now || !repository::lock_live_session(tx, &rec.session_id).map_err(db_error)? {
            return Ok(Err(invalid_refresh()));
        }
        if rec.rotated || !repository::mark_rotated(tx, &hash, now).map_err(db_error)? {
            // A rotated token came back: someone holds a copy. Revoke the
            // whole family so neither copy works any more.
            repository::revoke_session(tx, &rec.session_id, "refresh_token_reuse", &clock::now_rfc3339()).map_err(db_error)?;
            return Ok(Err(ApiError::new(
                401,
                "refresh_token_reused",
                "this refresh token was already used; the session has been revoked for safety — sign in again",
            )));
        }
        let Some(user) = repository::find_by_id(tx, &rec.user_id).map_err(db_error)? else {
            return Ok(Err(invalid_refresh()));
        };
        // The current role and email proof are read at every refresh, so
        // changes reach tokens within one access-token lifetime.
        Ok(Ok(issue_pair(tx, &signer, &rec.session_id, &user, now)?))
    })?;
    let issued = outcome?;
    tidy_sessions(&db);
    Ok(token_reply(issued, None))
}

pub fn logout(ctx: &Ctx) -> HandlerResult {
    let presented = refresh_token_of(ctx)?;
    let hash = tokens::hash_refresh_token(&presented);
    let db = open()?;
    if let Some(rec) = repository::find_refresh_token(&db, &hash).map_err(db_error)? {
        repository::revoke_session(&db, &rec.session_id, "logout", &clock::now_rfc3339()).map_err(db_error)?;
    }
    // Idempotent: logging out twice, or with an unknown token, is still "logged out".
    Ok(Reply::no_content())
}

// ---------------------------------------------------------------- profile

/// Run `change` on the caller's account in one transaction, its row locked
/// first, only while the session the access token belongs to is live. For
/// what someone could plant on an account registered with another
/// person's address (a phone number with SMS consent, marketing consent,
/// an address): a password reset ends every session and clears them
/// (`repository::claim_by_reset`), and the registrant's access token, good
/// for minutes more, must not set them again (found in review). The lock
/// orders it with the reset, which locks the row first too; a session
/// ended meanwhile is 401, as a refresh would be.
pub(crate) fn in_live_session<T>(db: &dyn Db, caller: &Caller, change: impl FnOnce(&dyn Db, UserRecord) -> Result<T, ApiError>) -> Result<T, ApiError> {
    transaction(db, |tx| {
        let user = repository::lock_live(tx, &caller.user_id).map_err(db_error)?.ok_or_else(|| ApiError::not_found("user"))?;
        if !repository::token_session_live(tx, &user.id, &caller.token_id).map_err(db_error)? {
            return Err(ApiError::of(ErrorCode::Unauthorized, "this session has ended (signed out, or the password was changed or reset); sign in again"));
        }
        change(tx, user)
    })
}

/// The caller's account (404 if it no longer exists).
pub(crate) fn load_user(db: &dyn Db, caller: &Caller) -> Result<UserRecord, ApiError> {
    repository::find_by_id(db, &caller.user_id)
        .map_err(db_error)?
        .ok_or_else(|| ApiError::not_found("user"))
}

pub fn get_profile(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    let user = load_user(&db, &caller)?;
    Ok(user_reply(200, &user).with_header("cache-control", "no-store"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    first_name: Option<String>,
    last_name: Option<String>,
}

pub fn update_profile(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let body: ProfileBody = ctx.json()?;
    if body.first_name.is_none() && body.last_name.is_none() {
        return Err(ApiError::new(400, "invalid_request", "send first_name and/or last_name"));
    }
    let mut errors = FieldProblems::default();
    let first = body.first_name.map(|f| errors.check("first_name", PersonName::parse(&f)));
    let last = body.last_name.map(|l| errors.check("last_name", PersonName::parse(&l)));
    errors.finish().map_err(ApiError::validation)?;
    let db = open()?;
    let (first, last) = (first.flatten(), last.flatten());
    let user = repository::update_names(&db, &caller.user_id, first.as_ref().map(|f| f.as_str()), last.as_ref().map(|l| l.as_str()), &clock::now_rfc3339())
        .map_err(db_error)?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(user_reply(200, &user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhoneBody {
    phone: String,
    /// Required and explicit: `true` consents to SMS about orders, `false`
    /// stores the number without it. Never assumed.
    sms_consent: bool,
}

/// `PUT /api/users/phone`: set the phone number for SMS and the consent.
/// Consent already given for the same number keeps its first time; a new
/// number needs (and records) consent anew.
pub fn set_phone(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let body: PhoneBody = ctx.json()?;
    let mut errors = FieldProblems::default();
    let phone = errors.check("phone", PhoneNumber::parse(&body.phone));
    errors.finish().map_err(ApiError::validation)?;
    let Some(phone) = phone else { return Err(ApiError::internal("validated phone missing")) };
    let db = open()?;
    let now = clock::now_rfc3339();
    let user = in_live_session(&db, &caller, |tx, mut user| {
        let consent_at = match (&user.sms_consent_at, body.sms_consent) {
            (Some(at), true) if user.phone.as_deref() == Some(phone.as_str()) => Some(at.clone()),
            (_, true) => Some(now.clone()),
            (_, false) => None,
        };
        repository::set_phone(tx, &user.id, Some(phone.as_str()), consent_at.as_deref(), &now).map_err(db_error)?;
        user.phone = Some(phone.as_str().to_string());
        user.sms_consent_at = consent_at;
        Ok(user)
    })?;
    Ok(user_reply(200, &user).with_header("cache-control", "no-store"))
}

/// `DELETE /api/users/phone`: remove the number and withdraw SMS consent.
pub fn remove_phone(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    let mut user = load_user(&db, &caller)?;
    repository::set_phone(&db, &user.id, None, None, &clock::now_rfc3339()).map_err(db_error)?;
    user.phone = None;
    user.sms_consent_at = None;
    Ok(user_reply(200, &user).with_header("cache-control", "no-store"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

pub fn change_password(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let body: PasswordBody = ctx.json()?;
    let db = open()?;
    let user = load_user(&db, &caller)?;
    // Counted with the same limits as sign-in: a stolen access token gives
    // no more password guesses than the login form.
    let limits = LoginLimits::from_variables();
    let attempt = match login_limits::reserve(&db, &limits, &user.email, &client_of(ctx), clock::unix_now()).map_err(db_error)? {
        Ok(attempt) => attempt,
        Err(wait) => return Err(too_many_attempts(wait)),
    };
    if !users_core::passwords::verify(&body.current_password, &user.password_hash) {
        attempt.failed();
        return Err(ApiError::new(422, "current_password_incorrect", "the current password is incorrect"));
    }
    attempt.succeeded(&db).map_err(db_error)?;
    let mut errors = FieldProblems::default();
    let new = errors.check("new_password", NewPassword::parse(&body.new_password, &user.email));
    errors.finish().map_err(ApiError::validation)?;
    let Some(new) = new else { return Err(ApiError::internal("validated password missing")) };
    let hash = users_core::passwords::hash(new.expose()).map_err(ApiError::internal)?;
    let now = clock::now_rfc3339();
    transaction(&db, |tx| -> Result<(), ApiError> {
        // The current password was checked against a hash a reset may have
        // replaced since: then it is not the current password any more.
        if repository::lock_if_password_unchanged(tx, &user.id, &user.password_hash).map_err(db_error)?.is_none() {
            return Err(ApiError::new(422, "current_password_incorrect", "the current password is incorrect"));
        }
        repository::update_password_hash(tx, &user.id, &hash, &now).map_err(db_error)?;
        let current = repository::session_of_access_token(tx, &caller.token_id).map_err(db_error)?;
        repository::revoke_other_sessions(tx, &user.id, current.as_deref(), "password_changed", &now).map_err(db_error)?;
        // A reset link sent before would set a password over this one: it
        // is spent (and its copy in the outbox wiped), as a reset spends it
        // (found in review: whoever had read the link took the account back).
        account_tokens::retire_unused(tx, Purpose::PasswordReset, &user.id, clock::unix_now()).map_err(db_error)?;
        repository::record_password_changed(tx, &user, &now).map_err(db_error)
    })?;
    http_kit::nudge::notifications();
    Ok(Reply::no_content())
}

// ---------------------------------------------------------------- admin

pub fn admin_list_users(ctx: &Ctx) -> HandlerResult {
    ctx.admin()?;
    let page = Pagination::from_query(&ctx.query)?;
    let email = ctx.query.text("email", 254)?;
    let pattern = email.map(|e| text_input::like_contains(&e.to_lowercase()));
    let db = open()?;
    let (users, total) = repository::list_users(&db, pattern.as_deref(), page.limit, page.offset()).map_err(db_error)?;
    let users: Vec<PublicUser> = users.iter().map(UserRecord::public).collect();
    Ok(Reply::ok(&json!({ "users": users, "page": page.page, "limit": page.limit, "total": total })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

pub fn admin_set_role(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.admin()?;
    let body: RoleBody = ctx.json()?;
    let role = Role::parse(body.role.trim()).ok_or_else(|| {
        ApiError::new(422, "validation_failed", "role must be `customer` or `admin`")
            .with_details(json!({ "fields": { "role": "must be customer or admin" } }))
    })?;
    if id == caller.user_id {
        // Stops an admin from locking the store out of its last admin account.
        return Err(ApiError::new(409, "cannot_change_own_role", "admins cannot change their own role"));
    }
    let db = open()?;
    let user = transaction(&db, |tx| -> Result<UserRecord, ApiError> {
        // The token's role claim may be up to its lifetime old: the caller
        // must be an admin now. With every admin row locked first, two
        // admins demoting each other at once take turns, and the second
        // finds it is no admin any more, so the shop never ends up with
        // none.
        let admins = repository::lock_admins(tx).map_err(db_error)?;
        if !admins.iter().any(|a| *a == caller.user_id) {
            return Err(ApiError::of(ErrorCode::Forbidden, "your account is no longer an admin; sign in again"));
        }
        // Always written, changed or not: setting a role decides it, so the
        // `admin_emails` rule no longer applies to the account. The row
        // lock also waits for a sign-in granting that rule meanwhile.
        repository::set_role(tx, id, role, &clock::now_rfc3339()).map_err(db_error)?.ok_or_else(|| ApiError::not_found("user"))
    })?;
    Ok(user_reply(200, &user))
}
