//! The payments service's use cases.

use http_kit::{ApiError, Ctx, HandlerResult, Reply};
use orders_core::access::owned_order;
use orders_core::domain::Status;
use orders_core::inventory_client::WitInventory;
use orders_core::orders::{self, Order};
use orders_core::restock;
use orders_core::schema;
use payments_core::access;
use payments_core::ledger::{self, Kind, LedgerError};
use payments_core::lifecycle::{self, Applied, PaymentError, Source};
use payments_core::refunds::{self, RefundError};
use payments_core::stripe::{self, StripeConfig, StripeError};
use payments_core::stripe_keys::StripeKey;
use payments_core::stripe_units;
use payments_core::summary;
use serde::Deserialize;
use serde_json::{json, Value as Json};

fn open() -> Result<storage::ServiceDb, ApiError> {
    Ok(schema::open_database()?)
}

fn stripe_config() -> Result<StripeConfig, ApiError> {
    let c = StripeConfig::from_variables();
    if c.configured() {
        Ok(c)
    } else {
        Err(ApiError::unavailable("payments_not_configured", "payments are not configured on this server (no Stripe key)"))
    }
}

fn stripe_error(e: StripeError) -> ApiError {
    match e {
        StripeError::Unavailable(m) => ApiError::unavailable("payment_provider_unavailable", "Stripe could not be reached; retry shortly")
            .with_header("retry-after", "2")
            .with_internal(m),
        // The call's key has moved to its next generation: the retry is a
        // new request at Stripe, not the replay of this answer.
        StripeError::ServerError { status } => ApiError::unavailable("payment_provider_unavailable", "Stripe failed; retry shortly")
            .with_header("retry-after", "2")
            .with_internal(format!("Stripe answered {status}")),
        // Stripe's own wait when it names one (within reason), else ours.
        StripeError::RateLimited { retry_after_secs } => {
            let wait = retry_after_secs.unwrap_or(2).clamp(1, 60);
            ApiError::unavailable("payment_provider_unavailable", "Stripe is busy; retry shortly")
                .with_header("retry-after", wait.to_string())
                .with_internal(format!("Stripe answered 429 (retry after {retry_after_secs:?} s)"))
        }
        StripeError::Rejected { status, message } => {
            ApiError::new(502, "payment_provider_error", "Stripe rejected the request").with_details(json!({ "stripe_status": status, "stripe_message": message }))
        }
        StripeError::Unexpected(m) => ApiError::new(502, "payment_provider_error", "Stripe's answer could not be used; nothing was recorded").with_internal(m),
    }
}

fn payable(order: &Order) -> Result<(), ApiError> {
    if order.status == Status::PendingPayment {
        Ok(())
    } else {
        Err(ApiError::new(409, "order_not_payable", format!("the order is {}; only orders pending payment can be paid", order.status))
            .with_details(json!({ "current_status": order.status })))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderRef {
    order_id: String,
}

/// The common start of both ways to pay: the caller's own order, pending
/// payment, with Stripe configured.
fn order_to_pay(ctx: &Ctx) -> Result<(StripeConfig, storage::ServiceDb, Order), ApiError> {
    let caller = ctx.caller()?;
    let body: OrderRef = ctx.json()?;
    let config = stripe_config()?;
    let db = open()?;
    let order = access::order_for(&db, &caller, &body.order_id, false)?;
    payable(&order)?;
    // Nothing to pay (a free order whose completion at placement failed):
    // completed now, not sent to Stripe, which takes no payment of 0.
    if order.total.amount_minor == 0 {
        let order = access::complete_if_free(&db, order)?;
        return Err(ApiError::new(409, "nothing_to_pay", "this order's total is zero: it needs no payment and is paid")
            .with_details(json!({ "current_status": order.status })));
    }
    // Every amount Stripe will be sent must be one it takes (its units are
    // not ISO's for every currency: see `stripe_units`).
    for amount in std::iter::once(order.total.amount_minor).chain(order.lines.iter().map(|l| l.unit_price.amount_minor)) {
        stripe_amount(amount, &order.currency)?;
    }
    Ok((config, db, order))
}

/// `amount_minor` of `currency` in Stripe's units, or 422 `amount_not_payable`.
fn stripe_amount(amount_minor: i64, currency: &str) -> Result<String, ApiError> {
    stripe_units::to_stripe(amount_minor, currency)
        .map(|a| a.to_string())
        .map_err(|e| ApiError::new(422, "amount_not_payable", format!("this order cannot be paid through Stripe as priced: {}", e.0)))
}

/// How much longer than its payment page an order holds its stock, so a
/// payment completed at the page's last moment still lands.
const HOLD_MARGIN_SECS: i64 = 60;

/// The latest an order's stock may be held by payment pages asked for
/// after it was placed: its own time to pay plus one session and the
/// margin, from its placement (found in review: a customer who asked for
/// a new page before each one ended held the stock for ever).
fn hold_limit(order: &Order, lifetime: i64) -> i64 {
    let placed = clock::parse_rfc3339(&order.created_at).unwrap_or_else(clock::unix_now);
    placed + stripe::unpaid_order_ttl_secs() + lifetime + HOLD_MARGIN_SECS
}

/// The payment methods Checkout and PaymentIntents offer: cards (with the
/// wallets that pay by card), whose payment is known as it is made. Methods
/// whose money arrives days later (SEPA or ACH debits, vouchers) would be
/// paid after the order's stock hold lapsed (found in review).
const PAYMENT_METHOD_TYPE: &str = "card";

pub fn checkout_session(ctx: &Ctx) -> HandlerResult {
    let (config, db, order) = order_to_pay(ctx)?;
    let now = clock::unix_now();
    // The session lives `checkout_session_ttl_secs`, kept two minutes inside
    // Stripe's bounds (30 minutes to 24 hours; `SESSION_CLOCK_SLACK_SECS`),
    // and the order's stock hold is extended to cover it and a minute more,
    // so that no payment page outlives the stock it sells.
    let (shortest, longest) = (*stripe::SESSION_LIFETIME_SECS.start(), *stripe::SESSION_LIFETIME_SECS.end());
    let lifetime = config.session_ttl_secs.clamp(shortest, longest.min(stripe::MAX_HOLD_SECS - HOLD_MARGIN_SECS));
    // A new session's expiry: within the order's hold if it has 30 minutes
    // left, else 30 minutes from now with the hold extended, but never past
    // the order's limit; none when even 30 minutes would pass it.
    // (Never below what the order's hold already covers: a limit lowered
    // by new settings takes nothing from an order placed before.)
    let latest = (hold_limit(&order, lifetime) - HOLD_MARGIN_SECS).max(order.expires_at - HOLD_MARGIN_SECS);
    let choose = Some((now + lifetime).min(order.expires_at - HOLD_MARGIN_SECS).max(now + shortest).min(latest)).filter(|t| *t >= now + shortest);
    let Some(expires_at) = summary::session_expiry(&db, &order, now, choose)? else {
        return Err(ApiError::new(409, "payment_time_over", "the time to pay this order is over; place the order again")
            .with_details(json!({ "current_status": order.status, "expires_at": order.expires_at })));
    };
    let hold_until = expires_at + HOLD_MARGIN_SECS;
    if order.expires_at < hold_until {
        match WitInventory.extend(&order.id, (hold_until - now) as u32) {
            Ok(true) => orders::extend_expiry(&db, &order.id, hold_until)?,
            Ok(false) => {
                return Err(ApiError::new(409, "order_not_payable", "the order's stock hold has ended; place the order again")
                    .with_details(json!({ "current_status": order.status })))
            }
            Err(m) => {
                return Err(ApiError::unavailable("inventory_unavailable", "stock could not be updated; retry shortly")
                    .with_header("retry-after", "1")
                    .with_internal(m))
            }
        }
    }
    let currency = order.currency.to_ascii_lowercase();
    let mut fields: Vec<(String, String)> = vec![
        ("mode".into(), "payment".into()),
        ("payment_method_types[0]".into(), PAYMENT_METHOD_TYPE.into()),
        ("client_reference_id".into(), order.id.clone()),
        ("metadata[order_id]".into(), order.id.clone()),
        ("payment_intent_data[metadata][order_id]".into(), order.id.clone()),
        ("expires_at".into(), expires_at.to_string()),
        ("success_url".into(), config.success_url.clone()),
        ("cancel_url".into(), config.cancel_url.clone()),
    ];
    for (i, l) in order.lines.iter().enumerate() {
        fields.push((format!("line_items[{i}][price_data][currency]"), currency.clone()));
        fields.push((format!("line_items[{i}][price_data][unit_amount]"), stripe_amount(l.unit_price.amount_minor, &currency)?));
        fields.push((format!("line_items[{i}][price_data][product_data][name]"), l.name.clone()));
        fields.push((format!("line_items[{i}][quantity]"), l.quantity.to_string()));
    }
    let key = StripeKey::load(&db, &summary::session_key(&db, &order.id, expires_at)?)?;
    let session = key.post(&db, &config, "/v1/checkout/sessions", &fields).map_err(stripe_error)?;
    let (Some(id), Some(url)) = (session["id"].as_str(), session["url"].as_str()) else {
        return Err(ApiError::new(502, "payment_provider_error", "Stripe's answer had no session id or url"));
    };
    let recorded = summary::record_created(&db, &order, Kind::CheckoutSession, id, Some(expires_at)).map_err(|e| held_elsewhere(e, id))?;
    ended_meanwhile(&db, &config, &order, recorded)?;
    Ok(Reply::created(&json!({ "id": id, "url": url, "order_id": order.id, "expires_at": expires_at })))
}

/// Stripe answered with an object id this shop already records for another
/// order (a Stripe account shared with another shop or test run, or a
/// Stripe defect): nothing is recorded, the client gets a clear 502 and the
/// log says which id.
fn held_elsewhere(e: LedgerError, stripe_id: &str) -> ApiError {
    match e {
        LedgerError::HeldByAnotherOrder { order_id: cause, .. } | LedgerError::Storage(storage::DbError::Constraint(cause)) => {
            println!("{}", json!({ "level": "error", "service": "payments", "stripe_id_already_recorded": stripe_id, "cause": cause }));
            ApiError::new(502, "payment_provider_error", "Stripe answered with a payment object this shop already holds for another order; retry later")
                .with_internal(format!("{stripe_id} is recorded for another order"))
        }
        LedgerError::Storage(other) => http_kit::db_error(other),
    }
}

pub fn create_intent(ctx: &Ctx) -> HandlerResult {
    let (config, db, order) = order_to_pay(ctx)?;
    let fields: Vec<(String, String)> = vec![
        ("amount".into(), stripe_amount(order.total.amount_minor, &order.currency)?),
        ("currency".into(), order.currency.to_ascii_lowercase()),
        ("metadata[order_id]".into(), order.id.clone()),
        ("payment_method_types[0]".into(), PAYMENT_METHOD_TYPE.into()),
    ];
    let key = StripeKey::load(&db, &format!("payment-intent:{}", order.id))?;
    let intent = key.post(&db, &config, "/v1/payment_intents", &fields).map_err(stripe_error)?;
    let (Some(id), Some(secret)) = (intent["id"].as_str(), intent["client_secret"].as_str()) else {
        return Err(ApiError::new(502, "payment_provider_error", "Stripe's answer had no intent id or client secret"));
    };
    let recorded = summary::record_created(&db, &order, Kind::PaymentIntent, id, None).map_err(|e| held_elsewhere(e, id))?;
    ended_meanwhile(&db, &config, &order, recorded)?;
    Ok(Reply::created(&json!({ "id": id, "client_secret": secret, "order_id": order.id })).with_header("cache-control", "no-store"))
}

/// The order was cancelled or expired while Stripe made its new payment
/// object: the object is closed at Stripe now (the sweep retries if Stripe
/// cannot be reached), and the caller gets the 409 it would have got a
/// moment later, never a page that takes money for stock given back.
fn ended_meanwhile(db: &dyn storage::Db, config: &StripeConfig, order: &Order, recorded: summary::Recorded) -> Result<(), ApiError> {
    let summary::Recorded::OrderEnded(status) = recorded else {
        return Ok(());
    };
    if let Err(e) = payments_core::closing::close_at_stripe(db, config, Some(&order.id), 1) {
        println!("{}", json!({ "level": "warn", "service": "payments", "order_id": order.id, "stripe_cleanup_deferred": e.to_string() }));
    }
    Err(ApiError::new(409, "order_not_payable", format!("the order is {status}; only orders pending payment can be paid"))
        .with_details(json!({ "current_status": status })))
}

pub fn payment_of_order(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    let order = access::order_for(&db, &caller, id, true)?;
    let payment = summary::payment_for(&db, &order.id)?;
    let objects = ledger::objects_of(&db, &order.id)?;
    let automatic_refunds = refunds::automatic_refunds(&db, &order.id)?;
    let disputes = orders_core::disputes::of_order(&db, &order.id)?;
    let refundable = refunds::refundable(&db, &order, Some(&StripeConfig::from_variables()))?.map_or(0, |r| r.left);
    Ok(Reply::ok(&json!({
        "order_id": order.id, "order_status": order.status, "total": order.total, "refunded": order.refunded,
        "refundable": { "amount_minor": refundable, "currency": order.total.currency },
        "payment": payment, "objects": objects, "automatic_refunds": automatic_refunds, "disputes": disputes,
    }))
        .with_header("cache-control", "no-store"))
}

/// How often the success page's return asks Stripe about one session, at
/// most (seconds): a page called in a loop would otherwise spend the shop's
/// Stripe rate limit, which every checkout and refund shares (found in
/// review).
const SESSION_CHECK_SECS: i64 = 2;

/// The success page's return: fetch the session from Stripe and apply it
/// exactly as the `checkout.session.completed` webhook would; within
/// [`SESSION_CHECK_SECS`] of the last time anyone did, answer what the shop
/// has recorded instead (`asked_stripe: false`).
pub fn session_return(ctx: &Ctx, session_id: &str) -> HandlerResult {
    let caller = ctx.caller()?;
    let config = stripe_config()?;
    let db = open()?;
    // Only a Checkout Session the shop recorded: another object of the
    // order (an intent, a charge, a refund) is no session (found in review:
    // Stripe's 404 for it came back as a 502).
    let recorded = ledger::find(&db, session_id)?.filter(|o| o.kind == Kind::CheckoutSession);
    if recorded.is_none() {
        return Err(ApiError::not_found("checkout session"));
    }
    let order_id = summary::order_of(&db, Some(session_id), None)?.ok_or_else(|| ApiError::not_found("checkout session"))?;
    // The payment is applied before any lazy expiry, as the webhook would
    // apply it: the same session has the same effect whoever comes first.
    let order = owned_order(&db, &caller, &order_id, false)?;
    let now = clock::unix_now();
    if !ledger::take_stripe_check(&db, session_id, now, SESSION_CHECK_SECS)? {
        let order = orders::load(&db, &order.id)?.ok_or_else(|| ApiError::not_found("order"))?;
        let order = access::expire_if_overdue(&db, order)?;
        let session_status = ledger::find(&db, session_id)?.map(|o| o.status);
        return Ok(Reply::ok(&json!({
            "order_id": order.id, "order_status": order.status,
            "session_status": session_status, "payment_status": null, "applied": null, "asked_stripe": false,
        }))
        .with_header("cache-control", "no-store"));
    }
    let fetched = config.get(&format!("/v1/checkout/sessions/{session_id}")).map_err(stripe_error).and_then(|session| {
        if session["id"].as_str() == Some(session_id) {
            Ok(session)
        } else {
            Err(ApiError::new(502, "payment_provider_error", "Stripe answered with another Checkout Session; nothing was recorded"))
        }
    });
    let session = match fetched {
        Ok(session) => session,
        Err(e) => {
            // No answer to go by: the next call asks again at once. (Not
            // when applying an answer fails: the catalog down, say, would
            // fail it again, and every reload would ask Stripe once more.)
            let _ = ledger::release_stripe_check(&db, session_id, now);
            return Err(e);
        }
    };
    apply_fetched(&db, &order, &session)
}

/// [`session_return`] with Stripe's answer: apply the session as its webhook would.
fn apply_fetched(db: &storage::ServiceDb, order: &Order, session: &Json) -> HandlerResult {
    let fetched = Source::Fetched { kind: "checkout.session.completed", object: session };
    let applied = match stripe::outcome_of("checkout.session.completed", session) {
        Some(outcome) => Some(lifecycle::apply(db, &order.id, &outcome, fetched, "checkout-return", &WitInventory).map_err(ApiError::from)?),
        None => None,
    };
    if let Some(applied) = &applied {
        return_owed_money(db, &order.id, applied);
    }
    let order = orders::load(db, &order.id)?.ok_or_else(|| ApiError::not_found("order"))?;
    let order = access::expire_if_overdue(db, order)?;
    http_kit::nudge::notifications();
    Ok(Reply::ok(&json!({
        "order_id": order.id, "order_status": order.status,
        "session_status": session["status"], "payment_status": session["payment_status"], "applied": applied, "asked_stripe": true,
    }))
    .with_header("cache-control", "no-store"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    order_id: String,
    amount: Option<i64>,
    /// Put every unit still sold back on hand (default false).
    restock: Option<bool>,
    /// Or put these back.
    restock_lines: Option<Vec<restock::RestockLine>>,
}

/// The answer to a refund request: the order as it now is, the refund,
/// and its restock. A restock that could not be made is reported and
/// flagged; the refund stands, and asking again with the same
/// Idempotency-Key makes it (same refund, same operation).
fn refund_reply(db: &dyn storage::Db, order: &Order, made: refunds::RefundMade, put_back: &restock::Restock, actor: &str, replayed: bool) -> HandlerResult {
    let (restocked, restock_problem) = match restock::restock(db, order, &made.refund_id, put_back, actor, &WitInventory) {
        Ok(back) => (Some(back), None),
        Err(e) => {
            orders::flag(db, order, "restock_failed")?;
            (None, Some(format!("{e:?}")))
        }
    };
    let order = orders::load(db, &order.id)?.ok_or_else(|| ApiError::not_found("order"))?;
    http_kit::nudge::notifications();
    let restocked = restocked.map(|lines| lines.into_iter().map(|(product_id, quantity)| json!({ "product_id": product_id, "quantity": quantity })).collect::<Vec<_>>());
    let reply = Reply::ok(&json!({ "order": order, "applied": made.applied, "refund_id": made.refund_id, "restocked": restocked, "restock_problem": restock_problem }));
    Ok(if replayed { reply.with_header("idempotent-replayed", "true") } else { reply })
}

/// Client keys that are refused: `cancel` (the cancellation's refund is
/// `refund:<order>:cancel`), keys starting `shop:` (the shop's keys for
/// requests without one) and keys with `#` (what the shop adds for a key's
/// next generation after Stripe failed it): a client's refund under one
/// would be taken for the shop's own, or the shop's for the client's
/// (found in review: `cancel#2` was the cancellation's second attempt, and
/// `300:300` the key of a later refund of 300 without one).
fn reserved_refund_key(key: &str) -> bool {
    key == "cancel" || key.starts_with("shop:") || key.contains('#')
}

pub fn refund(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.admin()?;
    let body: RefundBody = ctx.json()?;
    let config = stripe_config()?;
    let db = open()?;
    let order = access::order_for(&db, &caller, &body.order_id, true)?;
    let put_back = restock::choice(&order, body.restock, body.restock_lines, false)?;
    let actor = format!("admin:{}", caller.user_id);
    let client_key = http_kit::idempotency_key(ctx)?;
    if client_key.as_deref().is_some_and(reserved_refund_key) {
        return Err(ApiError::invalid_parameter(
            "Idempotency-Key",
            "`cancel`, keys starting `shop:` and keys with `#` are the shop's own; use another key",
        ));
    }
    // A `refunded` order whose refund Stripe could not pay out in the end
    // has money to send again.
    let refundable_again = || -> Result<bool, ApiError> {
        Ok(order.status == Status::Refunded && refunds::refundable(&db, &order, Some(&config))?.is_some_and(|r| r.left > 0))
    };
    if !(order.status.is_paid() || order.status == Status::Cancelled || refundable_again()?) {
        // The same request again after its refund was made (its answer was
        // lost): answered as it was, not as a new refund of nothing.
        if let Some(k) = &client_key {
            let made = refunds::replay_under(&db, &config, &order, &format!("refund:{}:{k}", order.id), &actor, &WitInventory).map_err(refund_error)?;
            if let Some(made) = made {
                return refund_reply(&db, &order, made, &put_back, &actor, true);
            }
        }
        return Err(ApiError::new(409, "not_refundable", format!("an order that is {} has nothing to refund", order.status))
            .with_details(json!({ "current_status": order.status })));
    }
    // A client key makes retries safe, at any later time. Without one the
    // key is derived from the refunds the shop itself recorded for the
    // payment (failed ones too) and the amount asked, so a retry before
    // the refund is recorded is still one refund. Never from the order's
    // refunded total: a `charge.refunded` event raises that for a refund
    // the shop made but could not record, and the retry then got a new key
    // and refunded again (found in review). The total of failed ones tells
    // a refund sent again after one failed apart from it.
    let key = match &client_key {
        Some(k) => format!("refund:{}:{k}", order.id),
        None => {
            let asked = body.amount.map(|a| a.to_string()).unwrap_or_else(|| "rest".into());
            let recorded = refunds::recorded_by_shop(&db, &order)?;
            format!("refund:{}:shop:{recorded}:{asked}", order.id)
        }
    };
    match refunds::refund_via_stripe(&db, &config, &order, body.amount, &key, &actor, &WitInventory) {
        // A refund the client's key made before is the same request again,
        // as documented (found in review: the header was sent only once the
        // order was refunded in full).
        Ok(made) => {
            let replayed = client_key.is_some() && made.replayed;
            refund_reply(&db, &order, made, &put_back, &actor, replayed)
        }
        Err(e) => Err(refund_error(e)),
    }
}

fn refund_error(e: RefundError) -> ApiError {
    match e {
        RefundError::TooMuch { refundable } => {
            ApiError::new(422, "invalid_refund_amount", format!("the amount must be from 1 to {refundable}")).with_details(json!({ "refundable": refundable }))
        }
        RefundError::NotPaid => ApiError::new(409, "no_payment_to_refund", "no Stripe payment is recorded for this order"),
        RefundError::NotPayable(why) => ApiError::new(422, "invalid_refund_amount", format!("Stripe cannot refund this amount: {why}")),
        RefundError::Stripe(e) => stripe_error(e),
        RefundError::Payment(e) => e.into(),
    }
}

/// A payment the order could not take (it had expired or been cancelled,
/// or was already paid) is refunded right away; if Stripe cannot be reached
/// now, the orders sweep retries it (the debt is already recorded).
fn return_owed_money(db: &dyn storage::Db, order_id: &str, applied: &Applied) {
    if let Applied::Flagged { problem } = applied {
        if problem.starts_with("paid_after_") || problem == "paid_twice" {
            if let Err(e) = refunds::refund_owed(db, &StripeConfig::from_variables(), Some(order_id), 10) {
                println!("{}", json!({ "level": "warn", "service": "payments", "order_id": order_id, "automatic_refund_deferred": e.to_string() }));
            }
        }
    }
}

/// Count a webhook request refused for its signature, for GET /metrics (an
/// alert watches it: a rotated secret not updated, or forged events). Best
/// effort: the request is refused either way.
fn count_bad_signature() {
    let counted = schema::open_database().and_then(|db| storage::counters::bump(&db, orders_core::metrics::BAD_WEBHOOK_SIGNATURE, clock::unix_now()));
    if let Err(e) = counted {
        println!("{}", json!({ "level": "warn", "service": "payments", "bad_signature_not_counted": e.to_string() }));
    }
}

/// The largest webhook body taken. Stripe's events for the shop's objects
/// are a few kilobytes; this leaves room for metadata and line items while
/// bounding what a caller without the secret can make the shop read.
const WEBHOOK_BODY_LIMIT: usize = 256 * 1024;

/// Stripe's signed events. A bad or missing signature, or a stale one, is a
/// 400 and changes nothing; a duplicate or unknown event is a 200 that does
/// nothing; a passing failure is a 503 so Stripe retries.
pub fn webhook(ctx: &Ctx) -> HandlerResult {
    let secret = StripeConfig::from_variables().webhook_secret;
    if secret.is_empty() {
        return Err(ApiError::unavailable("payments_not_configured", "the Stripe webhook secret is not configured"));
    }
    let body = ctx.body_limited(WEBHOOK_BODY_LIMIT)?;
    if let Err(e) = stripe::verify_signature(ctx.header("stripe-signature"), body, &secret, clock::unix_now(), stripe::SIGNATURE_TOLERANCE_SECS) {
        count_bad_signature();
        return Err(ApiError::new(400, "invalid_signature", e.to_string()));
    }
    let mut event: Json = serde_json::from_slice(body).map_err(|e| ApiError::new(400, "invalid_json", format!("event is not JSON: {e}")))?;
    // In the shop's units before anyone reads an amount (see `stripe_units`).
    stripe_units::normalize(&mut event);
    let (Some(event_id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return Err(ApiError::new(400, "invalid_event", "event has no id or type"));
    };
    let object = &event["data"]["object"];
    let ignored = |why: &str| Ok(Reply::ok(&json!({ "received": true, "ignored": why })));
    let Some(outcome) = stripe::outcome_of(kind, object) else { return ignored("event type not handled") };
    let db = open()?;
    // The order whose objects these are, by the ledger; an object not
    // recorded yet (a Checkout Session's intent, a charge) belongs to the
    // order its metadata names.
    let (order_ref, session, intent) = stripe::references(kind, object);
    let order_id = match summary::order_of(&db, session.as_deref(), intent.as_deref())? {
        Some(id) => id,
        None => match order_ref {
            Some(id) if orders::load(&db, &id)?.is_some() => id,
            _ => return ignored("no order for this event"),
        },
    };
    let source = Source::Event { id: event_id, kind, object };
    match lifecycle::apply(&db, &order_id, &outcome, source, "stripe", &WitInventory) {
        Ok(Applied::Duplicate) => ignored("duplicate event"),
        Ok(applied) => {
            return_owed_money(&db, &order_id, &applied);
            http_kit::nudge::notifications();
            Ok(Reply::ok(&json!({ "received": true, "order_id": order_id, "applied": applied })))
        }
        Err(PaymentError::UnknownOrder) => ignored("no order for this event"),
        // Nothing was recorded; Stripe need not retry an event the shop
        // will never apply, and the log names the object.
        Err(PaymentError::ObjectOfAnotherOrder { id, order_id: holder }) => {
            println!("{}", json!({ "level": "error", "service": "payments", "event": event_id, "object": id, "held_by_order": holder, "named_order": order_id }));
            ignored("the event names a payment object of another order")
        }
        Err(e) => Err(e.into()),
    }
}

pub fn health(ctx: &Ctx) -> HandlerResult {
    let db = schema::open_database().and_then(|db| storage::migrations::status(&db, schema::MIGRATION_SET.for_dialect(storage::Db::dialect(&db))));
    let stripe = http_kit::health::Check {
        name: "stripe",
        result: Ok(json!({ "configured": StripeConfig::from_variables().configured() })),
    };
    http_kit::health::report(ctx, "payments", vec![http_kit::health::database_check(schema::DATABASE_LABEL, db), stripe])
}
