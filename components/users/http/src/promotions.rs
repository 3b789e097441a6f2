//! Promotional email with consent: the customer's opt-in
//! (`PUT /api/users/marketing-consent`), an admin sending a promotion to
//! every customer who consents (`POST /api/admin/promotions`, through the
//! outbox), and the one-click unsubscribe every promotion links to
//! (`GET|POST /api/users/unsubscribe?user=..&sig=..`, RFC 8058), which
//! works without signing in. Transactional email never depends on it.

use crate::handlers::{in_live_session, user_reply};
use http_kit::signed_links;
use http_kit::{db_error, ApiError, Ctx, HandlerResult, Reply};
use serde::Deserialize;
use serde_json::json;
use storage::transaction;
use text_input::FieldProblems;
use users_core::{repository, schema};

/// What a one-click unsubscribe link signs (see `http_kit::signed_links`).
pub const UNSUBSCRIBE_PURPOSE: &str = "unsubscribe";
/// Limits on a promotion's parts, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 100_000;

fn open() -> Result<storage::ServiceDb, ApiError> {
    schema::open_database().map_err(db_error)
}

fn unsubscribe_secret() -> String {
    spin_sdk::variables::get("unsubscribe_secret").unwrap_or_default().trim().to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    /// Required: `true` opts in (and records when), `false` opts out.
    consent: bool,
}

/// `PUT /api/users/marketing-consent {"consent": true|false}`. Opting in
/// again keeps the first time.
pub fn set_consent(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let body: ConsentBody = ctx.json()?;
    let db = open()?;
    let now = clock::now_rfc3339();
    let user = in_live_session(&db, &caller, |tx, mut user| {
        let at = match (body.consent, user.marketing_consent_at.clone()) {
            (true, Some(at)) => Some(at),
            (true, None) => Some(now.clone()),
            (false, _) => None,
        };
        repository::set_marketing_consent(tx, &user.id, at.as_deref(), &now).map_err(db_error)?;
        user.marketing_consent_at = at;
        Ok(user)
    })?;
    Ok(user_reply(200, &user).with_header("cache-control", "no-store"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromotionBody {
    subject: String,
    html: String,
    text: String,
}

fn body_text(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    if t.chars().count() > MAX_BODY_CHARS {
        return Err(format!("must be at most {MAX_BODY_CHARS} characters"));
    }
    Ok(t.to_string())
}

/// `POST /api/admin/promotions`: record the promotion and one outbox event
/// naming it, in one short transaction; the notifications service fans it
/// out to the customers who consent, a page at a time, and sends it,
/// paced, each with its unsubscribe link. 202 with how many consent now.
pub fn send(ctx: &Ctx) -> HandlerResult {
    let admin = ctx.admin()?;
    let body: PromotionBody = ctx.json_limited(512 * 1024)?;
    if unsubscribe_secret().is_empty() {
        return Err(ApiError::unavailable(
            "promotions_not_configured",
            "promotions need the unsubscribe_secret variable (their unsubscribe links are signed with it)",
        ));
    }
    let mut p = FieldProblems::default();
    let subject = p.check("subject", text_input::bounded(&body.subject, MAX_SUBJECT_CHARS));
    let html = p.check("html", body_text(&body.html));
    let text = p.check("text", body_text(&body.text));
    p.finish().map_err(ApiError::validation)?;
    let (Some(subject), Some(html), Some(text)) = (subject, html, text) else {
        return Err(ApiError::internal("validated promotion incomplete"));
    };
    let id = http_kit::ids::uuid_v4()?;
    let now = clock::now_rfc3339();
    let db = open()?;
    let recipients = repository::consenting_count(&db).map_err(db_error)?;
    transaction(&db, |tx| repository::record_promotion(tx, &id, &subject, &html, &text, &admin.user_id, &now, recipients)).map_err(db_error)?;
    http_kit::nudge::notifications();
    Ok(Reply::json(202, &json!({ "id": id, "recipients": recipients, "created_at": now })))
}

fn page(status: u16, title: &str, message: &str, form_action: Option<&str>) -> Reply {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let form = form_action
        .map(|a| format!("<form method=\"post\" action=\"{}\"><button type=\"submit\">Unsubscribe</button></form>", esc(a)))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>{m}</p>{form}</body></html>",
        t = esc(title),
        m = esc(message)
    );
    // A page on the shop's origin: nothing but itself, never in a frame.
    Reply::bytes(status, "text/html; charset=utf-8", html.into_bytes())
        .with_header("cache-control", "no-store")
        .with_header("content-security-policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}

/// `GET|POST /api/users/unsubscribe?user=<id>&sig=<hex>`. POST (what mail
/// clients send for `List-Unsubscribe-Post: List-Unsubscribe=One-Click`,
/// and the page's button) withdraws the consent at once, without signing
/// in, and is idempotent. GET only shows a page with that button, so a
/// link scanner fetching the URL unsubscribes nobody (RFC 8058, section 3).
pub fn unsubscribe(ctx: &Ctx) -> HandlerResult {
    let user = ctx.query.get("user").unwrap_or("");
    let sig = ctx.query.get("sig").unwrap_or("");
    if !signed_links::verify(&unsubscribe_secret(), UNSUBSCRIBE_PURPOSE, user, sig) {
        return Err(ApiError::new(400, "invalid_unsubscribe_link", "this unsubscribe link is not valid"));
    }
    if ctx.method == "GET" {
        let action = format!("/api/users/unsubscribe?user={user}&sig={sig}");
        return Ok(page(200, "Unsubscribe from offers", "You will no longer get promotional email from us. Order and account emails are not affected.", Some(&action)));
    }
    let db = open()?;
    // An account deleted meanwhile has nothing left to withdraw.
    repository::set_marketing_consent(&db, user, None, &clock::now_rfc3339()).map_err(db_error)?;
    Ok(page(200, "Unsubscribed", "You will no longer get promotional email from us. Order and account emails are not affected.", None))
}
