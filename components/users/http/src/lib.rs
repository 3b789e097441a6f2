//! The users service: accounts, sessions and roles.
//!
//! Routes (see `static/openapi.yaml`):
//! - `POST /api/auth/register`, `POST /api/auth/login`, `POST /api/auth/refresh`, `POST /api/auth/logout`
//! - `POST /api/auth/verify-email`, `POST /api/auth/verify-email/resend`
//! - `POST /api/auth/password-reset`, `POST /api/auth/password-reset/confirm`
//! - `GET|PUT /api/users/profile`, `PUT /api/users/password`
//! - `PUT|DELETE /api/users/phone` (phone number for SMS, with consent)
//! - `PUT /api/users/marketing-consent`, `GET|POST /api/users/unsubscribe`
//!   (signed one-click link, no sign-in), `POST /api/admin/promotions` (admins)
//! - `GET|POST /api/users/addresses`, `GET|PUT|DELETE /api/users/addresses/{id}`
//! - `GET /api/users/me/export`, `DELETE /api/users/me`
//! - `GET /api/admin/users`, `PUT /api/admin/users/{id}/role` (admins)
//! - `GET /api/users/health`
//!
//! This is the only component that holds the JWT private key. Every other
//! component verifies access tokens with the public key via `http_kit::auth`.

mod accounts;
mod address_book;
mod handlers;
mod privacy;
mod promotions;

use users_core::schema;

use http_kit::{ApiError, Ctx, HandlerResult, Service};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

spin_sdk::wit_bindgen::generate!({
    world: "account-client",
    path: "../../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

const SERVICE: Service = Service { name: "users" };

#[http_component]
fn handle(req: IncomingRequest) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    let m = ctx.method.as_str();
    match ctx.segments().as_slice() {
        ["api", "auth", "register"] => only(m, "POST", || handlers::register(ctx)),
        ["api", "auth", "login"] => only(m, "POST", || handlers::login(ctx)),
        ["api", "auth", "refresh"] => only(m, "POST", || handlers::refresh(ctx)),
        ["api", "auth", "logout"] => only(m, "POST", || handlers::logout(ctx)),
        ["api", "auth", "verify-email"] => only(m, "POST", || accounts::verify_email(ctx)),
        ["api", "auth", "verify-email", "resend"] => only(m, "POST", || accounts::resend_verification(ctx)),
        ["api", "auth", "password-reset"] => only(m, "POST", || accounts::request_password_reset(ctx)),
        ["api", "auth", "password-reset", "confirm"] => only(m, "POST", || accounts::confirm_password_reset(ctx)),
        ["api", "users", "profile"] => match m {
            "GET" => handlers::get_profile(ctx),
            "PUT" => handlers::update_profile(ctx),
            _ => Err(ApiError::method_not_allowed(&["GET", "PUT"])),
        },
        ["api", "users", "password"] => only(m, "PUT", || handlers::change_password(ctx)),
        ["api", "users", "marketing-consent"] => only(m, "PUT", || promotions::set_consent(ctx)),
        ["api", "users", "unsubscribe"] => match m {
            "GET" | "POST" => promotions::unsubscribe(ctx),
            _ => Err(ApiError::method_not_allowed(&["GET", "POST"])),
        },
        ["api", "admin", "promotions"] => only(m, "POST", || promotions::send(ctx)),
        ["api", "users", "phone"] => match m {
            "PUT" => handlers::set_phone(ctx),
            "DELETE" => handlers::remove_phone(ctx),
            _ => Err(ApiError::method_not_allowed(&["PUT", "DELETE"])),
        },
        ["api", "users", "me"] => only(m, "DELETE", || privacy::delete(ctx)),
        ["api", "users", "me", "export"] => only(m, "GET", || privacy::export(ctx)),
        ["api", "users", "addresses"] => match m {
            "GET" => address_book::list(ctx),
            "POST" => address_book::create(ctx),
            _ => Err(ApiError::method_not_allowed(&["GET", "POST"])),
        },
        ["api", "users", "addresses", id] => match m {
            "GET" => address_book::get(ctx, id),
            "PUT" => address_book::replace(ctx, id),
            "DELETE" => address_book::delete(ctx, id),
            _ => Err(ApiError::method_not_allowed(&["GET", "PUT", "DELETE"])),
        },
        ["api", "users", "health"] => {
            let db = schema::open_database().and_then(|db| storage::migrations::status(&db, schema::MIGRATION_SET.for_dialect(storage::Db::dialect(&db))));
            // The token keys are a pair: signed tokens pass every service's check.
            let keys = http_kit::health::Check {
                name: "token_keys",
                result: users_core::tokens::keys_problem_from_variables().map_or(Ok(serde_json::json!({ "status": "ok" })), Err),
            };
            http_kit::health::report(ctx, SERVICE.name, vec![http_kit::health::database_check(schema::DATABASE_LABEL, db), keys])
        }
        ["api", "admin", "users"] => only(m, "GET", || handlers::admin_list_users(ctx)),
        ["api", "admin", "users", id, "role"] => only(m, "PUT", || handlers::admin_set_role(ctx, id)),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}

/// Dispatch when the method matches, else 405 naming the allowed one.
fn only(method: &str, allowed: &'static str, f: impl FnOnce() -> HandlerResult) -> HandlerResult {
    if method == allowed {
        f()
    } else {
        Err(ApiError::method_not_allowed(&[allowed]))
    }
}
