//! A customer's rights over their data: `GET /api/users/me/export` (all
//! the shop holds about them, across services) and `DELETE /api/users/me`
//! (erase it). The other services' parts come through their contracts
//! (`shop:orders/privacy`, `shop:notifications/privacy`, `shop:cart/cart`),
//! composed into this component. Both are written to the log as audit
//! lines (with the user id, never personal data).

use crate::handlers::{client_of, load_user, too_many_attempts};
use crate::shop::cart::cart;
use crate::shop::notifications::privacy as message_log;
use crate::shop::orders::privacy::{self as order_data, EraseError};
use http_kit::auth::Role;
use http_kit::{db_error, ApiError, Ctx, HandlerResult, Reply};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use storage::transaction;
use users_core::login_limits::{self, LoginLimits};
use users_core::{addresses, repository, schema};

fn open() -> Result<storage::ServiceDb, ApiError> {
    schema::open_database().map_err(db_error)
}

fn unavailable(what: &str, cause: String) -> ApiError {
    ApiError::unavailable("service_unavailable", format!("{what} is unavailable; retry shortly")).with_header("retry-after", "1").with_internal(cause)
}

/// The cart goes with the account (found in review: a failure was
/// ignored and the account erased with its cart kept). Cleared at the
/// version read, read again if it changed meanwhile; a cart store that
/// cannot be reached leaves the deletion retryable (503), before the
/// account is erased.
fn empty_the_cart(user_id: &str) -> Result<(), ApiError> {
    let gone = |e: cart::CartError| match e {
        cart::CartError::Unavailable(u) => unavailable("the cart", u.message),
        cart::CartError::Changed => ApiError::unavailable("cart_busy", "the cart is changing; retry shortly").with_header("retry-after", "1"),
    };
    for _ in 0..5 {
        let snapshot = cart::get_cart(user_id).map_err(gone)?;
        match cart::clear_cart(user_id, snapshot.version) {
            Ok(()) => return Ok(()),
            Err(cart::CartError::Changed) => continue,
            Err(e) => return Err(gone(e)),
        }
    }
    Err(gone(cart::CartError::Changed))
}

fn audit(action: &str, user_id: &str, extra: Json) {
    let mut line = json!({ "level": "info", "service": "users", "audit": action, "user_id": user_id, "at": clock::now_rfc3339() });
    if let (Some(line), Some(extra)) = (line.as_object_mut(), extra.as_object()) {
        line.extend(extra.clone());
    }
    println!("{line}");
}

/// `GET /api/users/me/export`: everything the shop holds about the caller.
pub fn export(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    let user = load_user(&db, &caller)?;
    let book = addresses::list(&db, &user.id).map_err(db_error)?;
    let sessions = repository::sessions_of(&db, &user.id).map_err(db_error)?;
    let parse = |raw: String| serde_json::from_str::<Json>(&raw).unwrap_or(Json::Null);
    let orders = order_data::export_user(&user.id).map_err(|e| unavailable("the order history", e.message))?;
    // The emails and SMS made for this account (never found by phone
    // number: another account may have entered the same one).
    let messages = message_log::export_user(&user.id, &user.email).map_err(|e| unavailable("the message log", e.message))?;
    let cart = cart::get_cart(&user.id).map_err(|e| match e {
        cart::CartError::Unavailable(u) => unavailable("the cart", u.message),
        cart::CartError::Changed => unavailable("the cart", "changed while read".into()),
    })?;
    let document = json!({
        "exported_at": clock::now_rfc3339(),
        "profile": {
            "user": user.public(),
            "email_verified_at": user.email_verified_at,
            "phone": user.phone,
        },
        "addresses": book,
        "sessions": sessions,
        "cart": { "lines": cart.lines.iter().map(|l| json!({ "product_id": l.product_id, "quantity": l.quantity })).collect::<Vec<_>>() },
        "orders": parse(orders),
        "emails": parse(messages.emails),
        "sms": parse(messages.sms),
        "consent": {
            "marketing_email": user.marketing_consent_at.is_some(),
            "marketing_email_given_at": user.marketing_consent_at,
            "sms": { "given": user.sms_consent_at.is_some(), "given_at": user.sms_consent_at, "phone": user.phone },
            "note": "Account and order emails are sent regardless of consent; promotional email only with marketing_email consent, SMS about orders only to a phone number with SMS consent.",
        },
    });
    audit("data_exported", &user.id, json!({}));
    Ok(Reply::ok(&document)
        .with_header("cache-control", "no-store")
        .with_header("content-disposition", format!("attachment; filename=\"shop-data-{}.json\"", user.id)))
}

#[derive(Deserialize)]
struct DeleteBody {
    password: Option<String>,
}

fn admin_cannot_be_deleted() -> ApiError {
    ApiError::new(409, "admin_cannot_be_deleted", "an admin account cannot be deleted; another admin must make it a customer first")
}

/// The account as a deletion reads it again, if it is still live (none:
/// another request deleted it, and the deletion is done, 204); an error if
/// its password changed or it became an admin since it was checked.
fn still_as_checked(now: Option<repository::UserRecord>, checked: &repository::UserRecord) -> Result<Option<repository::UserRecord>, ApiError> {
    let Some(now) = now else { return Ok(None) };
    if now.password_hash != checked.password_hash {
        return Err(ApiError::new(422, "password_incorrect", "the password was changed meanwhile; it is not this one any more"));
    }
    if now.role == Role::Admin {
        return Err(admin_cannot_be_deleted());
    }
    Ok(Some(now))
}

/// `DELETE /api/users/me {password}`: erase the caller's account.
pub fn delete(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let body: DeleteBody = ctx.json()?;
    let password = body.password.ok_or_else(|| ApiError::new(400, "invalid_request", "password is required"))?;
    let db = open()?;
    let user = load_user(&db, &caller)?;
    if user.role == Role::Admin {
        return Err(admin_cannot_be_deleted());
    }
    // The same limits as sign-in: a stolen access token cannot guess its way to a deletion.
    let limits = LoginLimits::from_variables();
    let attempt = match login_limits::reserve(&db, &limits, &user.email, &client_of(ctx), clock::unix_now()).map_err(db_error)? {
        Ok(attempt) => attempt,
        Err(wait) => return Err(too_many_attempts(wait)),
    };
    if !users_core::passwords::verify(&password, &user.password_hash) {
        attempt.failed();
        return Err(ApiError::new(422, "password_incorrect", "the password is incorrect"));
    }
    attempt.succeeded(&db).map_err(db_error)?;
    // Read again after the slow check, just before the first step that
    // cannot be undone (found in review: the refusal under lock at the end
    // came after the orders and messages were already cleared).
    if still_as_checked(repository::find_by_id(&db, &user.id).map_err(db_error)?, &user)?.is_none() {
        return Ok(Reply::no_content());
    }

    // Orders first: it refuses while an order still needs the customer, and
    // then nothing has changed anywhere.
    let orders_erased = match order_data::erase_user(&user.id) {
        Ok(n) => n,
        Err(EraseError::InProgress(ids)) => {
            return Err(ApiError::new(
                409,
                "orders_in_progress",
                "some orders are still being paid or delivered; the account can be deleted once they are delivered, cancelled or expired",
            )
            .with_details(json!({ "order_ids": ids })))
        }
        Err(EraseError::Unavailable(u)) => return Err(unavailable("the order history", u.message)),
    };
    // The message log before the account, so a failure here leaves the
    // request retryable; once more after, for a message queued meanwhile,
    // and only then is the account recorded there as erased (a deletion
    // that fails before its end leaves a live account that still gets its
    // emails).
    let emails_erased = message_log::erase_user(&user.id, &user.email, false).map_err(|e| unavailable("the message log", e.message))?;
    empty_the_cart(&user.id)?;
    let now = clock::now_rfc3339();
    let erased = transaction(&db, |tx| -> Result<bool, ApiError> {
        // The account as it is now, locked: the steps above take a while,
        // and what was read before them may have changed (found in review:
        // an admin promoted meanwhile was erased as a customer, a role
        // decided meanwhile was not kept, and a password reset meanwhile
        // did not stop a deletion the old password had authorised). Refused
        // here, the account keeps its login with its orders' addresses and
        // queued messages already cleared (the window is the steps above).
        let Some(current) = still_as_checked(repository::lock_live(tx, &user.id).map_err(db_error)?, &user)? else {
            return Ok(false);
        };
        // A listed address whose role was decided keeps that decision (found
        // in review: a demoted admin deleted the account, registered again and
        // was made admin anew).
        if current.role_decided_at.is_some() && crate::handlers::is_listed(&current.email) {
            repository::spend_admin_rule(tx, &current.email, &now).map_err(db_error)?;
        }
        repository::erase_account(tx, &current, &now).map_err(db_error)
    })?;
    if !erased {
        // Another request (a second click) deleted it meanwhile, and finishes it.
        return Ok(Reply::no_content());
    }
    // The account is gone: the request cannot be retried, so the last pass
    // is tried again before it is given up (and logged for an operator).
    let late = match message_log::erase_user(&user.id, &user.email, true).or_else(|_| message_log::erase_user(&user.id, &user.email, true)) {
        Ok(n) => n,
        Err(e) => {
            println!("{}", json!({ "level": "error", "service": "users", "user_id": user.id, "message_log_not_closed": e.message }));
            0
        }
    };
    audit("account_deleted", &user.id, json!({ "orders_anonymised": orders_erased, "emails_erased": emails_erased + late }));
    Ok(Reply::no_content())
}
