//! Stripe: webhook signatures, request bodies and a small API client.
//!
//! Configuration comes from Spin variables: `stripe_api_base`
//! (`https://api.stripe.com`; tests point it at a loopback fake),
//! `stripe_secret_key`, `stripe_webhook_secret`, `checkout_success_url`,
//! `checkout_cancel_url`, `checkout_session_ttl_secs`.

use hmac::{Hmac, Mac};
use serde_json::Value as Json;
use sha2::Sha256;

/// Stripe's own libraries reject signatures older than this.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    Stale,
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "Stripe-Signature header is missing",
            Self::Malformed => "Stripe-Signature header is malformed",
            Self::Stale => "Stripe-Signature timestamp is outside the tolerance",
            Self::Mismatch => "no v1 signature matches",
        })
    }
}

/// Lower-case hex, as Stripe writes signatures; anything else is `None`
/// (`from_str_radix` alone would also take `+f` and upper case, so a
/// signature could be altered and still match).
fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes().chunks(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

/// Verify `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]` over the raw body:
/// HMAC-SHA256 of `"<t>.<body>"` with the endpoint secret. Any `v1` may
/// match (several appear while a secret rotates); other schemes are ignored;
/// the comparison is constant-time; the timestamp must be within `tolerance`.
pub fn verify_signature(header: Option<&str>, body: &[u8], secret: &str, now: i64, tolerance: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match k {
            // Digits only (no sign), and only one timestamp.
            "t" if timestamp.is_none() && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?)
            }
            "t" => return Err(SignatureError::Malformed),
            "v1" => candidates.push(hex_decode(v).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // `abs_diff`: `now - t` overflowed for a far-away `t` (a panic in debug
    // builds, and in release a wrapped value that passed as fresh).
    if now.abs_diff(t) > tolerance.max(0).unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matched = candidates.iter().any(|c| mac.clone().verify_slice(c).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Sign like Stripe does (used by tests and tools).
pub fn sign(body: &[u8], secret: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// Stripe settings from Spin variables.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub api_base: String,
    pub secret_key: String,
    pub webhook_secret: String,
    pub success_url: String,
    pub cancel_url: String,
    pub session_ttl_secs: i64,
    /// Connect and first-byte timeout of each Stripe call
    /// (`stripe_timeout_ms`): a hanging Stripe is a 503, not a hung request.
    pub timeout_ms: u64,
}

/// What `checkout_session_ttl_secs` may be: Stripe's shortest Checkout
/// Session, and its longest.
pub const SESSION_TTL_SECS: std::ops::RangeInclusive<i64> = 1800..=86_400;
/// Stripe takes a Checkout Session's `expires_at` from 30 minutes to 24
/// hours after it creates the session, by its own clock. An expiry exactly
/// on a bound is refused as soon as the request spends a second on the way
/// or Stripe's clock is a second ahead, so the shop keeps this far inside
/// both: a session lasts at least 32 minutes and at most 23 h 58 min.
pub const SESSION_CLOCK_SLACK_SECS: i64 = 120;
/// The shortest and the longest lifetime this shop asks Stripe for.
pub const SESSION_LIFETIME_SECS: std::ops::RangeInclusive<i64> =
    (*SESSION_TTL_SECS.start() + SESSION_CLOCK_SLACK_SECS)..=(*SESSION_TTL_SECS.end() - SESSION_CLOCK_SLACK_SECS);
/// An expiry chosen earlier is sent again (a retry, under the same
/// Idempotency-Key) for a session Stripe has not made yet only while it is
/// still this far ahead: Stripe's 30 minutes and a minute for the way there.
pub const SESSION_REUSE_AHEAD_SECS: i64 = *SESSION_TTL_SECS.start() + 60;
/// The longest stock hold the catalog grants (its reservation cap): the
/// upper bound of an unpaid order's hold.
pub const MAX_HOLD_SECS: i64 = 86_400;
/// What `unpaid_order_ttl_secs` may be.
pub const UNPAID_HOLD_SECS: std::ops::RangeInclusive<i64> = 5..=MAX_HOLD_SECS;

/// How long an unpaid order holds its stock: `unpaid_order_ttl_secs` (5 to
/// 86400), by default the Checkout Session's lifetime plus five minutes, so
/// a payment completed at the session's last moment still lands — capped
/// at the catalog's longest hold, so every allowed session lifetime works
/// (a session's expiry never lies after the hold: see the payments
/// component's `checkout_session`).
pub fn unpaid_order_ttl_secs() -> i64 {
    spin_sdk::variables::get("unpaid_order_ttl_secs")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|t| UNPAID_HOLD_SECS.contains(t))
        .unwrap_or_else(|| (StripeConfig::from_variables().session_ttl_secs + 300).min(MAX_HOLD_SECS))
}

impl StripeConfig {
    pub fn from_variables() -> Self {
        let get = |n: &str| spin_sdk::variables::get(n).unwrap_or_default().trim().to_string();
        let ttl = get("checkout_session_ttl_secs").parse::<i64>().ok().filter(|t| SESSION_TTL_SECS.contains(t)).unwrap_or(*SESSION_TTL_SECS.start());
        Self {
            api_base: Some(get("stripe_api_base")).filter(|s| !s.is_empty()).unwrap_or_else(|| "https://api.stripe.com".into()),
            secret_key: get("stripe_secret_key"),
            webhook_secret: get("stripe_webhook_secret"),
            success_url: with_session_placeholder(&get("checkout_success_url")),
            cancel_url: get("checkout_cancel_url"),
            session_ttl_secs: ttl,
            timeout_ms: get("stripe_timeout_ms").parse().ok().filter(|t| (100..=60_000).contains(t)).unwrap_or(10_000),
        }
    }

    pub fn configured(&self) -> bool {
        !self.secret_key.is_empty()
    }
}

/// Checkout settings that are wrong on their own or conflict with each
/// other, each as a sentence an operator can act on. `get` reads a Spin
/// variable (empty when unset). Reported by `/health` (not ready) and in
/// the log, instead of surfacing later as failed orders or payments.
pub fn configuration_problems(get: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut p = http_kit::settings::Problems::default();
    let key = get("stripe_secret_key");
    if !key.is_empty() && get("stripe_webhook_secret").is_empty() {
        p.add(
            "stripe_secret_key is set but stripe_webhook_secret is empty: Stripe's webhook could never be verified, so payments completed outside the success page would never reach their orders"
                .to_string(),
        );
    }
    if !key.is_empty() && !(get("checkout_success_url").starts_with("http://") || get("checkout_success_url").starts_with("https://")) {
        p.add("stripe_secret_key is set but checkout_success_url is not an http(s) URL: Stripe refuses such sessions".to_string());
    }
    p.whole_number(get, "checkout_session_ttl_secs", SESSION_TTL_SECS, "seconds");
    p.whole_number(get, "unpaid_order_ttl_secs", UNPAID_HOLD_SECS, "seconds");
    p.whole_number(get, "stripe_timeout_ms", 100..=60_000, "milliseconds");
    p.one_of(get, "checkout_requires_verified_email", &["true", "false"]);
    p.one_of(get, "late_payments", &crate::lifecycle::LatePayments::VALUES);
    p.whole_number(get, "invoice_tax_rate_bps", 0..=i64::from(orders_core::invoices::MAX_TAX_RATE_BPS), "basis points");
    p.http_url(get, "checkout_cancel_url");
    p.0
}

/// Stripe fills in `{CHECKOUT_SESSION_ID}`; the storefront's success page
/// passes it to `GET /api/payments/checkout-session/{id}`. Added when the
/// configured URL lacks it.
fn with_session_placeholder(url: &str) -> String {
    if url.is_empty() || url.contains("{CHECKOUT_SESSION_ID}") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}session_id={{CHECKOUT_SESSION_ID}}")
}

/// A failed Stripe call.
#[derive(Debug, Clone, PartialEq)]
pub enum StripeError {
    /// No answer (network error, timeout): try again later with the same
    /// Idempotency-Key; Stripe may have run the request, and the key is how
    /// to get its result.
    Unavailable(String),
    /// Stripe answered with a 5xx. Stripe keeps that answer under the
    /// request's Idempotency-Key and replays it for 24 hours, so a retry
    /// needs the key's next generation (see [`crate::stripe_keys`]); the
    /// request may or may not have done its work at Stripe.
    ServerError { status: u16 },
    /// 429: Stripe is limiting this shop's requests; try again after its
    /// `Retry-After` when it sent one. Nothing was done (Stripe refuses the
    /// request before running it, so no answer is kept under its key).
    RateLimited { retry_after_secs: Option<u64> },
    /// Stripe refused the request (4xx): its error message.
    Rejected { status: u16, message: String },
    /// Stripe answered 2xx with something this shop cannot use.
    Unexpected(String),
}

impl std::fmt::Display for StripeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(m) => write!(f, "Stripe unavailable: {m}"),
            Self::ServerError { status } => write!(f, "Stripe answered {status}"),
            Self::RateLimited { retry_after_secs } => write!(f, "Stripe is rate limiting (retry after {retry_after_secs:?} s)"),
            Self::Rejected { status, message } => write!(f, "Stripe rejected the request ({status}): {message}"),
            Self::Unexpected(m) => write!(f, "Stripe's answer was unusable: {m}"),
        }
    }
}

/// Encode form fields the way Stripe expects (`a[b][c]=v`, already flattened).
pub fn form(fields: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Stripe accepts Idempotency-Keys of at most 255 characters. Ours are
/// derived (`refund:<order>:<client key>`...) and may be longer; those are
/// sent as a digest of the whole key, which is as unique and as stable.
pub fn stripe_idempotency_key(key: &str) -> String {
    const STRIPE_MAX: usize = 255;
    if key.len() <= STRIPE_MAX {
        return key.to_string();
    }
    use sha2::Digest;
    let digest: String = Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    // A readable prefix (the key's kind and order) and the digest.
    let prefix: String = key.chars().take(100).collect();
    format!("{prefix}:sha256:{digest}")
}

impl StripeConfig {
    fn send(&self, method: &str, path: &str, body: Option<String>, idempotency_key: Option<&str>) -> Result<Json, StripeError> {
        let url = format!("{}{}", self.api_base.trim_end_matches('/'), path);
        let mut headers = vec![("authorization", format!("Bearer {}", self.secret_key))];
        if let Some(k) = idempotency_key {
            headers.push(("idempotency-key", stripe_idempotency_key(k)));
        }
        if body.is_some() {
            headers.push(("content-type", "application/x-www-form-urlencoded".to_string()));
        }
        let answer = http_kit::outbound::send_with_timeouts(method, &url, &headers, body.as_deref().map(str::as_bytes), self.timeout_ms)
            .map_err(StripeError::Unavailable)?;
        let status = answer.status;
        let mut json: Json = serde_json::from_slice(&answer.body).unwrap_or(Json::Null);
        match status {
            200..=299 => {
                // In the shop's units before anyone reads an amount.
                crate::stripe_units::normalize(&mut json);
                Ok(json)
            }
            429 => Err(StripeError::RateLimited { retry_after_secs: answer.retry_after.as_deref().and_then(|v| v.trim().parse().ok()) }),
            400..=499 => Err(StripeError::Rejected {
                status,
                message: json["error"]["message"].as_str().unwrap_or("request rejected").to_string(),
            }),
            500..=599 => Err(StripeError::ServerError { status }),
            _ => Err(StripeError::Unavailable(format!("status {status}"))),
        }
    }

    /// `POST` a form with an `Idempotency-Key`.
    pub fn post(&self, path: &str, fields: &[(String, String)], idempotency_key: &str) -> Result<Json, StripeError> {
        self.send("POST", path, Some(form(fields)), Some(idempotency_key))
    }

    /// `GET` an object.
    pub fn get(&self, path: &str) -> Result<Json, StripeError> {
        self.send("GET", path, None, None)
    }
}

/// What a Stripe event (or a retrieved Checkout Session, as
/// `checkout.session.completed`) means for its order; `None` for events
/// that change nothing (unknown types, a session completed but not yet paid).
pub fn outcome_of(event_type: &str, object: &Json) -> Option<crate::lifecycle::Outcome> {
    use crate::lifecycle::Outcome;
    let currency = || object["currency"].as_str().unwrap_or("").to_string();
    let id = || object["id"].as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let session_paid = || Outcome::Paid {
        amount_minor: object["amount_total"].as_i64().unwrap_or(-1),
        currency: currency(),
        payment_intent: object["payment_intent"].as_str().map(str::to_string),
    };
    let attempt = |payment_status| Some(Outcome::AttemptEnded { payment_status, object: id() });
    match event_type {
        "checkout.session.completed" => matches!(object["payment_status"].as_str(), Some("paid")).then(session_paid),
        "checkout.session.async_payment_succeeded" => Some(session_paid()),
        // One payment attempt ended without money; the order stays payable
        // (a new session or another card) until its own stock hold lapses.
        "checkout.session.async_payment_failed" => attempt("failed"),
        "checkout.session.expired" => attempt("session_expired"),
        "payment_intent.succeeded" => Some(Outcome::Paid {
            amount_minor: object["amount_received"].as_i64().unwrap_or(-1),
            currency: currency(),
            payment_intent: id(),
        }),
        // A declined card: the intent returns to `requires_payment_method`
        // and the customer may try another one.
        "payment_intent.payment_failed" => attempt("requires_payment_method"),
        "payment_intent.canceled" => attempt("canceled"),
        // A refund's status changed (the ledger records it); one that
        // returned nothing in the end flags the order.
        "refund.updated" | "refund.failed" | "charge.refund.updated" => id().map(|refund| Outcome::RefundChanged { refund }),
        // A card dispute (chargeback): opened, its status changed, its
        // money withdrawn or reinstated, or closed (`won`, `lost`).
        "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed" | "charge.dispute.funds_withdrawn" | "charge.dispute.funds_reinstated" => {
            let status = object["status"].as_str().filter(|s| !s.is_empty())?;
            Some(Outcome::Disputed(orders_core::disputes::Told {
                id: id()?,
                payment_intent: object["payment_intent"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
                amount_minor: object["amount"].as_i64().unwrap_or(0),
                currency: currency().to_ascii_uppercase(),
                reason: object["reason"].as_str().unwrap_or("unknown").chars().take(100).collect(),
                status: status.chars().take(50).collect(),
            }))
        }
        "charge.refunded" => object["amount_refunded"].as_i64().filter(|a| *a >= 0).map(|total_refunded| Outcome::Refunded {
            total_refunded,
            payment_intent: object["payment_intent"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
        }),
        _ => None,
    }
}

/// The references an event object carries to find its order: our order id
/// (metadata or `client_reference_id`), the session id, the intent id.
pub fn references(event_type: &str, object: &Json) -> (Option<String>, Option<String>, Option<String>) {
    let s = |v: &Json| v.as_str().filter(|x| !x.is_empty()).map(str::to_string);
    let order = s(&object["metadata"]["order_id"]).or_else(|| s(&object["client_reference_id"]));
    let (session, intent) = if event_type.starts_with("checkout.session.") {
        (s(&object["id"]), s(&object["payment_intent"]))
    } else if event_type.starts_with("payment_intent.") {
        (None, s(&object["id"]))
    } else {
        (None, s(&object["payment_intent"]))
    };
    (order, session, intent)
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_checkout_settings_are_named() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()).unwrap_or_default();
        assert!(configuration_problems(&vars(&[])).is_empty(), "the defaults (payments off) are fine");
        let good = vars(&[("stripe_secret_key", "sk"), ("stripe_webhook_secret", "wh"), ("checkout_success_url", "https://shop/ok"), ("checkout_session_ttl_secs", "86400")]);
        assert!(configuration_problems(&good).is_empty());
        let bad = vars(&[("stripe_secret_key", "sk"), ("checkout_success_url", "shop/ok"), ("checkout_session_ttl_secs", "60"), ("unpaid_order_ttl_secs", "a week")]);
        let problems = configuration_problems(&bad);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("stripe_webhook_secret")) && problems.iter().any(|p| p.contains("\"a week\"")));
    }

    #[test]
    fn idempotency_keys_always_fit_stripes_limit() {
        assert_eq!(stripe_idempotency_key("refund:o1:abc"), "refund:o1:abc");
        let long = format!("refund:{}:{}", "o".repeat(36), "k".repeat(255));
        let sent = stripe_idempotency_key(&long);
        assert!(sent.len() <= 255, "{}", sent.len());
        assert!(sent.starts_with("refund:oooo"));
        assert_eq!(sent, stripe_idempotency_key(&long), "stable, so a retry is the same request");
        let other = format!("refund:{}:{}x", "o".repeat(36), "k".repeat(254));
        assert_ne!(stripe_idempotency_key(&other), sent);
    }
    use crate::lifecycle::Outcome;
    use serde_json::json;

    #[test]
    fn events_map_to_outcomes() {
        let session = json!({ "id": "cs_1", "amount_total": 1000, "currency": "usd", "payment_status": "paid", "payment_intent": "pi_1", "client_reference_id": "o1" });
        assert_eq!(
            outcome_of("checkout.session.completed", &session),
            Some(Outcome::Paid { amount_minor: 1000, currency: "usd".into(), payment_intent: Some("pi_1".into()) })
        );
        let unpaid = json!({ "payment_status": "unpaid" });
        assert_eq!(outcome_of("checkout.session.completed", &unpaid), None, "async methods complete later");
        assert_eq!(outcome_of("checkout.session.expired", &session), Some(Outcome::AttemptEnded { payment_status: "session_expired", object: Some("cs_1".into()) }));
        assert_eq!(outcome_of("payment_intent.canceled", &json!({})), Some(Outcome::AttemptEnded { payment_status: "canceled", object: None }));
        assert_eq!(
            outcome_of("payment_intent.payment_failed", &json!({})),
            Some(Outcome::AttemptEnded { payment_status: "requires_payment_method", object: None })
        );
        assert_eq!(outcome_of("charge.refunded", &json!({ "amount_refunded": 300 })), Some(Outcome::Refunded { total_refunded: 300, payment_intent: None }));
        assert_eq!(outcome_of("customer.created", &json!({})), None);
        assert_eq!(references("checkout.session.completed", &session), (Some("o1".into()), Some("cs_1".into()), Some("pi_1".into())));
        assert_eq!(references("charge.refunded", &json!({ "payment_intent": "pi_9" })), (None, None, Some("pi_9".into())));
    }

    #[test]
    fn signatures_verify_like_stripes() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, "whsec_test", 1000);
        assert_eq!(verify_signature(Some(&header), body, "whsec_test", 1000, 300), Ok(()));
        assert_eq!(verify_signature(Some(&header), body, "whsec_test", 1299, 300), Ok(()));
        assert_eq!(verify_signature(Some(&header), body, "whsec_test", 1301, 300), Err(SignatureError::Stale));
        assert_eq!(verify_signature(Some(&header), b"{\"id\":\"evt_2\"}", "whsec_test", 1000, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(Some(&header), body, "whsec_other", 1000, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(None, body, "whsec_test", 1000, 300), Err(SignatureError::Missing));
        assert_eq!(verify_signature(Some("garbage"), body, "whsec_test", 1000, 300), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(Some("t=1000,v1=zz"), body, "whsec_test", 1000, 300), Err(SignatureError::Malformed));
    }

    #[test]
    fn any_v1_may_match_and_other_schemes_are_ignored() {
        let body = b"{}";
        let good = sign(body, "whsec_new", 50);
        let v1 = good.split("v1=").nth(1).unwrap();
        let header = format!("t=50,v0=abcd,v1={},v1={v1}", "00".repeat(32));
        assert_eq!(verify_signature(Some(&header), body, "whsec_new", 50, 300), Ok(()));
    }

    #[test]
    fn forms_are_encoded() {
        let f = form(&[("line_items[0][price_data][currency]".into(), "usd".into()), ("name".into(), "A & B".into())]);
        assert_eq!(f, "line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=usd&name=A+%26+B");
    }
}
