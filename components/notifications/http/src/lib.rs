//! The notifications service: transactional email through Resend.
//!
//! Domain events are written by the users and checkout services to their
//! own `outbox` tables, in the same transaction as the change. This
//! component reads those outboxes (read-only; they are the services'
//! published integration point), renders each event that needs an email
//! from the templates in `components/notifications/templates/`, and
//! delivers it — to Resend, or, with no Resend key, to the local mail log
//! (stored, listed by the admin endpoint, and printed to the log). It is
//! the only component allowed to reach Resend.
//!
//! - `POST /api/notifications/sweep` — pull and deliver what is due
//!   (scheduler; `X-Sweep-Secret`)
//! - `POST /internal/notifications/deliver` — the same, called in-process by
//!   the other services right after a change (see `http_kit::nudge`)
//! - `GET /api/admin/notifications`, `GET /api/admin/notifications/{id}` — admins
//! - `GET /api/notifications/health`

use notifications_core::deliveries::{self, Attempt};
use notifications_core::{events, resend, schema};
use http_kit::{ApiError, Ctx, HandlerResult, Pagination, Reply, Service};
use serde_json::{json, Value as Json};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use storage::{Db, DbError, ServiceDb};

const SERVICE: Service = Service { name: "notifications" };

#[http_component]
fn handle(req: Request) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    match (ctx.method.as_str(), ctx.segments().as_slice()) {
        (_, ["api", "notifications", "health"]) => health(ctx),
        ("POST", ["api", "notifications", "sweep"]) => {
            http_kit::auth::require_shared_secret(ctx, "sweep_secret", "x-sweep-secret")?;
            let reply = sweep(50)?;
            // For GET /metrics: when the sweep last ran (an alert fires when it stops).
            storage::counters::bump(&open()?, notifications_core::metrics::SWEEP, clock::unix_now())?;
            Ok(reply)
        }
        // Reachable only in-process (no public route maps `/internal/...` to
        // this component): other services call it right after a change.
        ("POST", ["internal", "notifications", "deliver"]) => sweep(10),
        ("GET", ["api", "admin", "notifications"]) => list(ctx),
        ("GET", ["api", "admin", "notifications", id]) => get(ctx, id),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}

fn open() -> Result<ServiceDb, DbError> {
    schema::open_database()
}

fn store_name() -> String {
    Some(spin_sdk::variables::get("store_name").unwrap_or_default().trim().to_string()).filter(|s| !s.is_empty()).unwrap_or_else(|| "Shop".into())
}

/// Pull both outboxes, then deliver up to `limit` due emails.
fn sweep(limit: u32) -> HandlerResult {
    let db = open()?;
    let now = clock::unix_now();
    let store = store_name();
    let users = ServiceDb::connect("users", "users_database_url")?;
    let orders = ServiceDb::connect("orders", "orders_database_url")?;
    let from_user = |p: &Json| -> Result<Option<String>, DbError> { Ok(p["user"]["email"].as_str().map(str::to_string)) };
    let user_email = |p: &Json| -> Result<Option<String>, DbError> {
        let Some(id) = p["user_id"].as_str() else { return Ok(None) };
        users.query("SELECT email FROM users WHERE id = ?", &[id.into()])?.first().map(|r| r.text("email")).transpose()
    };
    let mut pulled = deliveries::pull(&db, "users", &users, &store, &from_user, now)?;
    pulled += deliveries::pull(&db, "orders", &orders, &store, &user_email, now)?;
    let published = match events::target_from_variables() {
        Some((address, channel)) => {
            let outcome = events::publish_new(&db, "users", &users, &address, &channel)
                .and_then(|a| events::publish_new(&db, "orders", &orders, &address, &channel).map(|b| a + b));
            match outcome {
                Ok(n) => json!(n),
                Err(e) => {
                    println!("{}", json!({ "level": "warn", "service": "notifications", "redis_publish_failed": e }));
                    json!({ "error": "publishing to Redis failed; retried at the next sweep" })
                }
            }
        }
        None => json!(null),
    };

    let resend = resend::ResendConfig::from_variables();
    let mut counts = json!({ "pulled": pulled, "published": published, "sent": 0, "logged": 0, "retrying": 0, "failed": 0 });
    for d in deliveries::claim_due(&db, now, limit)? {
        let attempt = if resend.configured() {
            resend.send(&d)
        } else {
            println!("{}", json!({ "level": "info", "service": "notifications", "mail_log": { "event_type": d.event_type, "idempotency_key": d.idempotency_key, "to": d.recipient, "subject": d.subject, "text": d.text } }));
            Attempt::Logged
        };
        let key = match &attempt {
            Attempt::Sent { .. } => "sent",
            Attempt::Logged => "logged",
            Attempt::Retry { .. } => "retrying",
            Attempt::Permanent { .. } => "failed",
        };
        counts[key] = json!(counts[key].as_i64().unwrap_or(0) + 1);
        deliveries::record(&db, &d, &attempt, clock::unix_now())?;
    }
    Ok(Reply::ok(&counts))
}

fn list(ctx: &Ctx) -> HandlerResult {
    ctx.admin()?;
    let page = Pagination::from_query(&ctx.query)?;
    let status = ctx.query.one_of("status", &["pending", "sending", "sent", "logged", "failed"])?;
    let db = open()?;
    let (items, total) = deliveries::list(&db, status, page.limit, page.offset())?;
    Ok(Reply::ok(&json!({ "notifications": items, "page": page.page, "limit": page.limit, "total": total })).with_header("cache-control", "no-store"))
}

fn get(ctx: &Ctx, raw: &str) -> HandlerResult {
    ctx.admin()?;
    let id: i64 = raw.parse().map_err(|_| ApiError::invalid_parameter("id", "must be a notification id (a number)"))?;
    let db = open()?;
    let d = deliveries::get(&db, id)?.ok_or_else(|| ApiError::not_found("notification"))?;
    Ok(Reply::ok(&d).with_header("cache-control", "no-store"))
}

fn health(ctx: &Ctx) -> HandlerResult {
    let db = open().and_then(|db| storage::migrations::status(&db, schema::MIGRATION_SET.for_dialect(db.dialect())));
    let mode = http_kit::health::Check {
        name: "delivery",
        result: Ok(json!({ "mode": if resend::ResendConfig::from_variables().configured() { "resend" } else { "local_mail_log" } })),
    };
    http_kit::health::report(ctx, "notifications", vec![http_kit::health::database_check(schema::DATABASE_LABEL, db), mode])
}
