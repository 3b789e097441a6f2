//! Proof of email ownership and password reset: the endpoints that work
//! with the single-use links of `users_core::account_tokens`.

use crate::handlers::{apply_bootstrap_admin, client_of, tidy_counts_and_links_now};
use http_kit::{db_error, ApiError, Ctx, ErrorCode, HandlerResult, Reply};
use serde::Deserialize;
use serde_json::json;
use storage::{transaction, Db};
use text_input::FieldProblems;
use users_core::account_tokens::{self, Purpose, Used};
use users_core::domain::{Email, NewPassword};
use users_core::repository::{self, Counter, UserRecord};
use users_core::schema;

/// Verification emails a signed-in user may ask for per hour.
const VERIFY_RESENDS_PER_HOUR: i64 = 3;
/// Reset emails per address per hour.
const RESETS_PER_EMAIL_PER_HOUR: i64 = 3;
/// Reset requests per client address per hour, unless
/// `password_reset_requests_per_client` says otherwise (an office or a
/// carrier behind one address may need more).
const RESETS_PER_CLIENT_PER_HOUR: i64 = 20;

fn resets_per_client_per_hour() -> i64 {
    per_client_per_hour("password_reset_requests_per_client", RESETS_PER_CLIENT_PER_HOUR)
}

/// Registrations per client address per hour (`registrations_per_client`).
const REGISTRATIONS_PER_CLIENT_PER_HOUR: i64 = 30;

/// A per-client hourly limit from its Spin variable, else `default`.
fn per_client_per_hour(variable: &str, default: i64) -> i64 {
    spin_sdk::variables::get(variable).ok().and_then(|v| v.trim().parse::<i64>().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// Take one of this client's registrations for the hour, before anything
/// costly: each registration hashes a password with Argon2id (19 MiB, tens
/// of milliseconds) and sends a welcome email, and without a limit a
/// script could make the server do both without end, or test which
/// addresses have accounts (found in review). 429 `rate_limited` with
/// `Retry-After` past the limit.
pub(crate) fn reserve_registration(db: &dyn Db, ctx: &Ctx) -> Result<(), ApiError> {
    let key = format!("register:client:{}", client_of(ctx));
    let max = per_client_per_hour("registrations_per_client", REGISTRATIONS_PER_CLIENT_PER_HOUR);
    match repository::take_slot(db, Counter::Requests, &key, clock::unix_now(), HOUR, max).map_err(db_error)? {
        Some(wait) => Err(too_many_requests(wait, "registrations")),
        None => {
            tidy_counts_and_links_now(db);
            Ok(())
        }
    }
}
const HOUR: i64 = 3600;

fn open() -> Result<storage::ServiceDb, ApiError> {
    schema::open_database().map_err(db_error)
}

fn invalid_link() -> ApiError {
    ApiError::new(400, "invalid_or_expired_token", "this link is invalid, has expired or was already used; ask for a new one")
}

fn too_many_requests(wait: i64, what: &str) -> ApiError {
    ApiError::of(ErrorCode::RateLimited, format!("too many {what} requested; try again later"))
        .with_header("retry-after", wait.to_string())
        .with_details(json!({ "retry_after_seconds": wait }))
}

#[derive(Deserialize)]
struct TokenBody {
    token: Option<String>,
}

/// The link's token: missing or blank is a malformed request; one longer
/// than any token the shop issues is simply not a valid link.
fn token_of(raw: Option<String>) -> Result<String, ApiError> {
    let token = raw.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).ok_or_else(|| ApiError::new(400, "invalid_request", "token is required"))?;
    if token.len() > 200 {
        return Err(invalid_link());
    }
    Ok(token)
}

/// The owner of `used.email` has proven it: mark it verified (if the
/// account still has that address), and apply the `admin_emails` rule when
/// `holds_credentials`: the prover also holds the account's credentials.
///
/// The inbox alone is not enough (found in review): whoever registers a
/// listed address first chooses its password, and its owner, clicking the
/// welcome link, would have made that account admin. So the rule applies
/// at a password reset (the inbox's owner sets the password, and every
/// other session ends) and at a verification sent with a session of the
/// same account (one signed in with its password), never at a verification
/// by link alone or at sign-in.
fn after_proof(tx: &dyn Db, used: &Used, now: &str, holds_credentials: bool) -> Result<Option<UserRecord>, ApiError> {
    let Some(mut user) = repository::mark_email_verified(tx, &used.user_id, &used.email, now).map_err(db_error)? else {
        return Ok(None);
    };
    if holds_credentials {
        repository::mark_owner_proven(tx, &user.id, now).map_err(db_error)?;
        apply_bootstrap_admin(tx, &mut user, now)?;
    }
    Ok(Some(user))
}

/// `POST /api/auth/verify-email {token}`: the link from the verification
/// email, with the account's access token when the browser is signed in to
/// it (see [`after_proof`]; any other token, or a stale one, is ignored).
pub fn verify_email(ctx: &Ctx) -> HandlerResult {
    let signed_in = ctx.caller().ok().map(|c| c.user_id);
    let body: TokenBody = ctx.json()?;
    let token = token_of(body.token)?;
    let db = open()?;
    let now = clock::unix_now();
    let stamp = clock::now_rfc3339();
    let Some(holder) = account_tokens::peek(&db, Purpose::VerifyEmail, &token, now).map_err(db_error)? else {
        return Err(invalid_link());
    };
    let user = transaction(&db, |tx| -> Result<Option<UserRecord>, ApiError> {
        // The account's row before its token, as a deletion locks them.
        if repository::lock_live(tx, &holder.user_id).map_err(db_error)?.is_none() {
            return Ok(None);
        }
        let Some(used) = account_tokens::consume(tx, Purpose::VerifyEmail, &token, now).map_err(db_error)? else {
            return Ok(None);
        };
        let holds_credentials = signed_in.as_deref() == Some(used.user_id.as_str());
        after_proof(tx, &used, &stamp, holds_credentials)
    })?
    .ok_or_else(invalid_link)?;
    Ok(Reply::ok(&json!({ "user": user.public() })).with_header("cache-control", "no-store"))
}

/// `POST /api/auth/verify-email/resend`: a new verification email for the
/// signed-in user, a few per hour.
pub fn resend_verification(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    let now = clock::unix_now();
    let storefront = account_tokens::storefront_url_from_variables();
    let user = transaction(&db, |tx| -> Result<UserRecord, ApiError> {
        // The account as it is now, locked: once deleted (also by a deletion
        // racing this request) it gets no token and no event holding its
        // address. A refusal rolls the slot back with everything else.
        let user = repository::lock_live(tx, &caller.user_id).map_err(db_error)?.ok_or_else(|| ApiError::not_found("user"))?;
        if user.email_verified_at.is_some() {
            return Err(ApiError::new(409, "email_already_verified", "this account's email address is already verified"));
        }
        if let Some(wait) = repository::take_slot(tx, Counter::Requests, &format!("verify:{}", user.id), now, HOUR, VERIFY_RESENDS_PER_HOUR).map_err(db_error)? {
            return Err(too_many_requests(wait, "verification emails"));
        }
        account_tokens::send(tx, Purpose::VerifyEmail, &user.public(), &storefront, now, Purpose::VerifyEmail.ttl_secs_from_variables())?;
        Ok(user)
    })?;
    tidy_counts_and_links_now(&db);
    http_kit::nudge::notifications();
    Ok(Reply::json(202, &json!({ "sent_to": user.email })))
}

#[derive(Deserialize)]
struct ResetRequestBody {
    email: Option<String>,
}

/// `POST /api/auth/password-reset {email}`: always the same answer, whether
/// or not an account has this address.
pub fn request_password_reset(ctx: &Ctx) -> HandlerResult {
    let body: ResetRequestBody = ctx.json()?;
    let raw = body.email.ok_or_else(|| ApiError::new(400, "invalid_request", "email is required"))?;
    let mut errors = FieldProblems::default();
    let email = errors.check("email", Email::parse(&raw));
    errors.finish().map_err(ApiError::validation)?;
    let Some(email) = email else { return Err(ApiError::internal("validated email missing")) };

    let db = open()?;
    let now = clock::unix_now();
    let storefront = account_tokens::storefront_url_from_variables();
    let ttl = Purpose::PasswordReset.ttl_secs_from_variables();
    let client_key = format!("reset:client:{}", client_of(ctx));
    let email_key = format!("reset:email:{}", email.as_str());
    // One transaction whether or not the account exists (the limits are
    // written either way), so both cost one commit: the answer's timing
    // does not tell. Both limits apply to unknown addresses too, so a 429
    // tells nothing either.
    let limited = transaction(&db, |tx| -> Result<Option<i64>, ApiError> {
        // The account's row first (locked, as a deletion locks it before its
        // tokens and counters): one statement whether or not it exists.
        let user = repository::lock_live_by_email(tx, email.as_str()).map_err(db_error)?;
        let take = |key: &str, max: i64| repository::take_slot(tx, Counter::Requests, key, now, HOUR, max).map_err(db_error);
        if let Some(wait) = take(&client_key, resets_per_client_per_hour())? {
            return Ok(Some(wait));
        }
        if let Some(wait) = take(&email_key, RESETS_PER_EMAIL_PER_HOUR)? {
            return Ok(Some(wait));
        }
        if let Some(user) = user {
            account_tokens::send(tx, Purpose::PasswordReset, &user.public(), &storefront, now, ttl)?;
        }
        Ok(None)
    })?;
    // Whether or not the account exists, as everything above.
    tidy_counts_and_links_now(&db);
    if let Some(wait) = limited {
        return Err(too_many_requests(wait, "password resets"));
    }
    // No in-process delivery here: it would make the answer slower exactly
    // when an account exists. The email goes out at the next delivery (any
    // other change's, or the scheduled sweep).
    Ok(Reply::json(
        202,
        &json!({ "message": "If an account uses this address, an email with a link to reset its password is on its way." }),
    )
    .with_header("cache-control", "no-store"))
}

#[derive(Deserialize)]
struct ResetConfirmBody {
    token: Option<String>,
    new_password: Option<String>,
}

/// `POST /api/auth/password-reset/confirm {token, new_password}`: set the
/// password, end every session, and announce the change.
pub fn confirm_password_reset(ctx: &Ctx) -> HandlerResult {
    let body: ResetConfirmBody = ctx.json()?;
    let token = token_of(body.token)?;
    let raw_password = body.new_password.ok_or_else(|| ApiError::new(400, "invalid_request", "new_password is required"))?;
    let db = open()?;
    let now = clock::unix_now();
    // Check the password against the account's address before using the
    // link, so a refused password leaves the link usable.
    let holder = account_tokens::peek(&db, Purpose::PasswordReset, &token, now).map_err(db_error)?.ok_or_else(invalid_link)?;
    let mut errors = FieldProblems::default();
    let new = errors.check("new_password", NewPassword::parse(&raw_password, &holder.email));
    errors.finish().map_err(ApiError::validation)?;
    let Some(new) = new else { return Err(ApiError::internal("validated password missing")) };
    let hash = users_core::passwords::hash(new.expose()).map_err(ApiError::internal)?;
    let stamp = clock::now_rfc3339();
    transaction(&db, |tx| -> Result<(), ApiError> {
        // The account's row before its token, as a deletion locks them.
        let user = repository::lock_live(tx, &holder.user_id).map_err(db_error)?.ok_or_else(invalid_link)?;
        // Decides between two uses of the same link: one wins.
        let used = account_tokens::consume(tx, Purpose::PasswordReset, &token, now).map_err(db_error)?.ok_or_else(invalid_link)?;
        repository::update_password_hash(tx, &user.id, &hash, &stamp).map_err(db_error)?;
        repository::revoke_all_sessions(tx, &user.id, "password_reset", &stamp).map_err(db_error)?;
        account_tokens::retire_unused(tx, Purpose::PasswordReset, &user.id, now).map_err(db_error)?;
        // Whoever held the password before was never proven the owner:
        // what they set goes (`repository::claim_by_reset`).
        if repository::claim_by_reset(tx, &user.id, &stamp).map_err(db_error)? {
            println!("{}", json!({ "level": "info", "service": "users", "audit": "account_claimed_by_reset", "user_id": user.id, "at": stamp }));
        }
        // The owner proved the address; failed sign-ins before the reset no
        // longer lock them out.
        let user = after_proof(tx, &used, &stamp, true)?.unwrap_or(user);
        repository::clear_email_counters(tx, &user.email, now).map_err(db_error)?;
        repository::record_password_changed(tx, &user, &stamp).map_err(db_error)
    })?;
    http_kit::nudge::notifications();
    Ok(Reply::no_content())
}
