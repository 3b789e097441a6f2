//! The notifications service: transactional email through Resend, and SMS
//! about orders through Twilio to customers who consented.
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
//! - `POST /internal/notifications/deliver` — called in-process by the
//!   other services right after a change (see `http_kit::nudge`): pulls the
//!   outboxes and sends the emails and SMS of that request's own events
//!   (named by `x-shop-events-of`), nothing else
//! - `GET /api/admin/notifications`, `GET /api/admin/notifications/{id}` — admins
//! - `GET /api/notifications/health`

use notifications_core::deliveries::{self, Attempt};
use notifications_core::deliveries::{Delivery, Lane, OwnEmail, OutboxEvent, Recipient};
use notifications_core::{events, promotions, resend, schema, sms, twilio};
use http_kit::{ApiError, Ctx, HandlerResult, Pagination, Reply, Service};
use serde_json::{json, Value as Json};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;
use storage::{Db, DbError, ServiceDb};

const SERVICE: Service = Service { name: "notifications" };

#[http_component]
fn handle(req: IncomingRequest) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, route))
}

fn route(ctx: &Ctx) -> HandlerResult {
    match (ctx.method.as_str(), ctx.segments().as_slice()) {
        (_, ["api", "notifications", "health"]) => health(ctx),
        ("POST", ["api", "notifications", "sweep"]) => {
            http_kit::auth::require_shared_secret(ctx, "sweep_secret", "x-sweep-secret")?;
            let reply = sweep(50, None)?;
            // For GET /metrics: when the sweep last ran (an alert fires when it stops).
            storage::counters::bump(&open()?, notifications_core::metrics::SWEEP, clock::unix_now())?;
            Ok(reply)
        }
        // Reachable only in-process (no public route maps `/internal/...` to
        // this component): other services call it right after a change.
        ("POST", ["internal", "notifications", "deliver"]) => sweep(10, events_of(ctx)),
        ("GET", ["api", "admin", "notifications"]) => list(ctx),
        ("GET", ["api", "admin", "notifications", id]) => get(ctx, id),
        (_, ["api", "admin", "notifications"] | ["api", "admin", "notifications", _]) => Err(ApiError::method_not_allowed(&["GET", "HEAD"])),
        (_, ["api", "notifications", "sweep"]) => Err(ApiError::method_not_allowed(&["POST"])),
        _ => Err(ApiError::no_route(&ctx.path)),
    }
}

fn open() -> Result<ServiceDb, DbError> {
    schema::open_database()
}

fn store_name() -> String {
    Some(spin_sdk::variables::get("store_name").unwrap_or_default().trim().to_string()).filter(|s| !s.is_empty()).unwrap_or_else(|| "Shop".into())
}

/// The events a nudge names (`x-shop-events-of`: the traceparent they were
/// recorded with), if it names them with a well-formed traceparent.
fn events_of(ctx: &Ctx) -> Option<&str> {
    ctx.header(http_kit::nudge::EVENTS_OF).map(str::trim).filter(|t| http_kit::trace::parse_traceparent(t).is_some())
}

/// Pull both outboxes, then deliver up to `limit` due emails and SMS: the
/// events recorded with the traceparent `events_of` only (a request's
/// nudge), or any due ones and a promotion batch (the sweep).
fn sweep(limit: u32, events_of: Option<&str>) -> HandlerResult {
    let db = open()?;
    let now = clock::unix_now();
    let store = store_name();
    let users = ServiceDb::connect("users", "users_database_url")?;
    let orders = ServiceDb::connect("orders", "orders_database_url")?;
    // Each delivery is for the account its event names: the users service's
    // events carry the account, the orders service's its id.
    let from_user = |p: &Json| -> Result<Option<Recipient>, DbError> {
        let user = &p["user"];
        Ok(user["email"].as_str().map(|email| Recipient { address: email.into(), user_id: user["id"].as_str().map(str::to_string) }))
    };
    let user_email = |p: &Json| -> Result<Option<Recipient>, DbError> {
        let Some(id) = p["user_id"].as_str() else { return Ok(None) };
        let email = users.query("SELECT email FROM users WHERE id = ?", &[id.into()])?.first().map(|r| r.text("email")).transpose()?;
        Ok(email.map(|email| Recipient::of_account(id, email)))
    };
    // A phone number only with the customer's SMS consent.
    let consenting_phone = |p: &Json| -> Result<Option<Recipient>, DbError> {
        let Some(id) = p["user_id"].as_str() else { return Ok(None) };
        Ok(sms::consenting_phone(&users, id)?.map(|phone| Recipient::of_account(id, phone)))
    };
    let no_sms = |_: &Json| -> Result<Option<Recipient>, DbError> { Ok(None) };
    let promotion_email = |e: &OutboxEvent| -> Result<Option<OwnEmail>, DbError> { promotion_email(&users, e, &store) };
    // Promotions in a lane of their own, pulled by the sweep only: a large
    // promotion never stands in front of a reset or verification email,
    // and a customer's request never renders one.
    let mut pulled = deliveries::pull_with(&db, "users", Lane::Except(deliveries::PROMOTION), &users, &store, &from_user, &no_sms, &|_| Ok(None), now)?;
    if events_of.is_none() {
        pulled += deliveries::pull_with(&db, "users", Lane::Only(deliveries::PROMOTION), &users, &store, &from_user, &no_sms, &promotion_email, now)?;
        // One page of a promotion's customers per sweep (250; a sweep sends
        // at most 100), once the variables its links need are set.
        if let Some((secret, base)) = promotion_settings() {
            let render = |p: &promotions::Promotion, to: Recipient| {
                let link = promotions::unsubscribe_link(&base, &secret, to.user_id.as_deref().unwrap_or_default());
                promotions::render(p, to, &link, &store)
            };
            pulled += promotions::fan_out(&db, &users, &render, now)?;
        }
    }
    pulled += deliveries::pull(&db, "orders", &orders, &store, &user_email, &consenting_phone, now)?;
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
    let twilio = twilio::TwilioConfig::from_variables();
    let mut counts = json!({ "pulled": pulled, "published": published, "sent": 0, "logged": 0, "retrying": 0, "failed": 0, "handed_back": 0 });
    let claimed = match events_of {
        Some(traceparent) => deliveries::claim_due_of(&db, traceparent, now, limit)?,
        None => deliveries::claim_due(&db, now, limit)?,
    };
    // A provider that answered one delivery with a retry (down, rate
    // limiting, timing out) is not asked again in this call: its other
    // claims go back unsent, their attempts not spent.
    let (mut email_down, mut sms_down) = (false, false);
    // Resend's rate limit (2 requests a second per team, shared with every
    // request's own delivery) answers a sweep's quick run of sends with a
    // 429 now and then: the sweep waits the short Retry-After out and goes
    // on (found in review: it handed every other email back, so a backlog
    // went out two or three a sweep). Not a request's own delivery, which a
    // customer waits for; a few pauses per call at most.
    let mut pauses_left = if events_of.is_none() { MAX_RATE_LIMIT_PAUSES } else { 0 };
    for d in claimed {
        if (d.channel == "sms" && sms_down) || (d.channel != "sms" && email_down) {
            deliveries::hand_back(&db, &d)?;
            counts["handed_back"] = json!(counts["handed_back"].as_i64().unwrap_or(0) + 1);
            continue;
        }
        // However long the sends before it took: if its lease lapsed and
        // another sweep took it, or its account was erased, it is not sent here.
        let send_secs = send_allowance_secs(if d.channel == "sms" { twilio.timeout_ms } else { resend.timeout_ms });
        if !deliveries::renew(&db, &d, clock::unix_now(), send_secs)? {
            continue;
        }
        let attempt = if d.channel == "sms" {
            if !sms::still_consented(&users, &d)? {
                Attempt::Permanent { error: "not sent: the customer withdrew SMS consent (or the number) since the event".into() }
            } else if twilio.configured() {
                twilio.send(&d)
            } else {
                println!("{}", json!({ "level": "info", "service": "notifications", "sms_log": { "event_type": d.event_type, "idempotency_key": d.idempotency_key, "to": d.recipient, "text": d.text } }));
                Attempt::Logged
            }
        } else if resend.configured() {
            resend.send(&d)
        } else {
            mail_log(&d);
            Attempt::Logged
        };
        let brief_limit = match &attempt {
            Attempt::Retry { after_secs, error } if d.channel != "sms" && error.starts_with("429") => {
                // Only with a short Retry-After: a 429 without one may be a
                // daily or monthly quota, which no pause fixes.
                after_secs.filter(|s| (0..=MAX_RATE_LIMIT_PAUSE_SECS).contains(s))
            }
            _ => None,
        };
        match brief_limit {
            Some(secs) if pauses_left > 0 => {
                pauses_left -= 1;
                std::thread::sleep(std::time::Duration::from_secs(secs.max(1) as u64));
            }
            _ if attempt.provider_failing() => {
                if d.channel == "sms" {
                    sms_down = true;
                } else {
                    email_down = true;
                }
            }
            _ => {}
        }
        let key = match &attempt {
            Attempt::Sent { .. } => "sent",
            Attempt::Logged => "logged",
            Attempt::Retry { .. } => "retrying",
            Attempt::Permanent { .. } => "failed",
        };
        counts[key] = json!(counts[key].as_i64().unwrap_or(0) + 1);
        deliveries::record(&db, &d, &attempt, clock::unix_now())?;
    }
    // Promotions go out in the sweep's paced batches, never in a customer's request.
    // Not after Resend just answered a retry: its batch would only fail too.
    counts["promotions"] = json!(if events_of.is_none() && !email_down { send_promotions(&db, &users, &resend)? } else { 0 });
    Ok(Reply::ok(&counts))
}

/// How many times one sweep waits out a brief Resend rate limit, and how
/// long a wait it takes (longer ones hand the rest back, as an outage does).
const MAX_RATE_LIMIT_PAUSES: u32 = 5;
const MAX_RATE_LIMIT_PAUSE_SECS: i64 = 2;

/// The longest one provider call may take, in whole seconds: its connect
/// and its first-byte timeout (`timeout_ms` each), and a second more.
fn send_allowance_secs(timeout_ms: u64) -> i64 {
    (2 * timeout_ms).div_ceil(1000) as i64 + 1
}

/// Write an email to the local mail log (no Resend key): the component's log.
fn mail_log(d: &Delivery) {
    println!("{}", json!({ "level": "info", "service": "notifications", "mail_log": { "event_type": d.event_type, "idempotency_key": d.idempotency_key, "to": d.recipient, "subject": d.subject, "text": d.text } }));
}

/// The variables promotions need: the unsubscribe secret and the public address.
fn promotion_settings() -> Option<(String, String)> {
    let get = |n: &str| spin_sdk::variables::get(n).unwrap_or_default().trim().to_string();
    let secret = get("unsubscribe_secret");
    let base = Some(get("storefront_url")).filter(|s| !s.is_empty()).unwrap_or_else(|| "http://127.0.0.1:3000".into());
    (!secret.is_empty()).then_some((secret, base))
}

/// The email of a `promotion.send` event for one customer (as the users
/// service recorded promotions until version 10 of this service's schema;
/// one naming no customer is fanned out instead, `promotions::fan_out`):
/// to the customer's address while they consent, with the promotion's
/// content and a signed unsubscribe link.
fn promotion_email(users: &ServiceDb, e: &OutboxEvent, store: &str) -> Result<Option<OwnEmail>, DbError> {
    if e.event_type != deliveries::PROMOTION {
        return Ok(None);
    }
    let (Some(promotion_id), Some(user_id)) = (e.payload["promotion_id"].as_str(), e.payload["user"]["id"].as_str()) else { return Ok(None) };
    let Some((secret, base)) = promotion_settings() else { return Ok(None) };
    let Some(to) = consenting_email(users, user_id)? else { return Ok(None) };
    let rows = users.query("SELECT subject, html, text FROM promotions WHERE id = ?", &[promotion_id.into()])?;
    let Some(row) = rows.first() else { return Ok(None) };
    let promotion = promotions::Promotion { subject: row.text("subject")?, html: row.text("html")?, text: row.text("text")? };
    Ok(Some(promotions::render(&promotion, Recipient::of_account(user_id, to), &promotions::unsubscribe_link(&base, &secret, user_id), store)))
}

/// The address of a customer who consents to promotions now, from a
/// confirmed address.
fn consenting_email(users: &ServiceDb, user_id: &str) -> Result<Option<String>, DbError> {
    users
        .query("SELECT email FROM users WHERE id = ? AND marketing_consent_at IS NOT NULL AND email_verified_at IS NOT NULL AND deleted_at IS NULL", &[user_id.into()])?
        .first()
        .map(|r| r.text("email"))
        .transpose()
}

/// Send one batch of due promotional emails, if the shared pacing slot is
/// free. Consent is checked again first: a customer who unsubscribed since
/// the promotion was sent gets nothing. Returns how many went out.
fn send_promotions(db: &ServiceDb, users: &ServiceDb, resend: &resend::ResendConfig) -> Result<usize, DbError> {
    let now = clock::unix_now();
    if !deliveries::take_promotion_slot(db, clock::unix_millis(), promotions::BATCH_GAP_MS)? {
        return Ok(0);
    }
    let mut batch: Vec<Delivery> = Vec::new();
    for d in deliveries::claim_due_promotions(db, now, promotions::BATCH_SIZE)? {
        let consents = match promotions::user_of(&d.idempotency_key) {
            Some(user) => consenting_email(users, user)?.is_some(),
            None => false,
        };
        if consents {
            batch.push(d);
        } else {
            let withdrawn = Attempt::Permanent { error: "not sent: the customer withdrew consent to promotions".into() };
            deliveries::record(db, &d, &withdrawn, now)?;
        }
    }
    // Renewed as one send (see `deliveries::renew`), with the batch's key
    // recorded on it first: only what is still this claim's goes.
    let (renewed, key) = deliveries::renew_batch(db, &batch, clock::unix_now(), send_allowance_secs(resend.timeout_ms))?;
    batch.retain(|d| renewed.contains(&d.id));
    if !batch.is_empty() {
        deliveries::pace_promotions_from(db, clock::unix_millis(), promotions::BATCH_GAP_MS)?;
    }
    let outcomes = if resend.configured() {
        if batch.is_empty() { Vec::new() } else { resend.send_batch(&batch, &key) }
    } else {
        batch.iter().for_each(mail_log);
        batch.iter().map(|_| Attempt::Logged).collect()
    };
    // The batch's outcomes in one transaction: recorded a row at a time, a
    // failure part-way left some due and the rest leased, and the due part
    // went again alone under the batch's key (found in review).
    let now = clock::unix_now();
    storage::transaction(db, |tx| {
        for (d, attempt) in batch.iter().zip(&outcomes) {
            deliveries::record(tx, d, attempt, now)?;
        }
        Ok::<_, DbError>(())
    })?;
    Ok(batch.iter().zip(&outcomes).filter(|(_, a)| matches!(a, Attempt::Sent { .. } | Attempt::Logged)).count())
}

fn list(ctx: &Ctx) -> HandlerResult {
    ctx.admin()?;
    let page = Pagination::from_query(&ctx.query)?;
    let status = ctx.query.one_of("status", &["pending", "sending", "sent", "logged", "failed"])?;
    let channel = ctx.query.one_of("channel", &["email", "sms"])?;
    let db = open()?;
    let (items, total) = deliveries::list(&db, status, channel, page.limit, page.offset())?;
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
        result: Ok(json!({
            "mode": if resend::ResendConfig::from_variables().configured() { "resend" } else { "local_mail_log" },
            "sms_mode": if twilio::TwilioConfig::from_variables().configured() { "twilio" } else { "local_log" },
        })),
    };
    http_kit::health::report(ctx, "notifications", vec![http_kit::health::database_check(schema::DATABASE_LABEL, db), mode])
}
