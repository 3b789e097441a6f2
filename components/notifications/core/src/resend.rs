//! Resend's email API: `POST {resend_api_base}/emails` with a bearer key,
//! a JSON body and an `Idempotency-Key`.

use crate::deliveries::{Attempt, Delivery, EventTrace};
use serde_json::json;

/// Resend's answer as an outcome: 2xx sent (with the id `id_of` finds),
/// 429 and 5xx retried (after `Retry-After`), and 409
/// `concurrent_idempotent_requests` too (a request under the same key is
/// still being handled, e.g. one whose answer timed out here: found in
/// review, it failed the delivery for good); 401 and 403 retried as well,
/// no sooner than in [`ACCOUNT_RETRY_SECS`]: they are about the shop's
/// account (a missing, revoked or restricted API key, an unverified
/// domain), not this email, and failed every queued email for good until
/// someone fixed the key (found in review); other 4xx permanent.
fn classify(status: u16, answer: &serde_json::Value, retry_after: Option<String>, id_of: impl Fn(&serde_json::Value) -> Option<String>) -> Attempt {
    let message = answer["message"].as_str().unwrap_or("");
    let in_progress = status == 409 && answer["name"].as_str() == Some("concurrent_idempotent_requests");
    match status {
        200..=299 => Attempt::Sent { provider_id: id_of(answer) },
        _ if in_progress => Attempt::Retry { after_secs: None, error: format!("{status} {message}") },
        401 | 403 => Attempt::Retry { after_secs: Some(ACCOUNT_RETRY_SECS), error: format!("{status} {message} (the shop's Resend account refused it: check resend_api_key and the sending domain)") },
        429 | 500..=599 => {
            let after = retry_after.and_then(|v| v.trim().parse::<i64>().ok());
            Attempt::Retry { after_secs: after, error: format!("{status} {message}") }
        }
        _ => Attempt::Permanent { error: format!("{status} {message}") },
    }
}

/// How long an email Resend refused for the shop's account (401, 403)
/// waits at least before its next attempt.
pub const ACCOUNT_RETRY_SECS: i64 = 300;

/// Resend settings from Spin variables.
pub struct ResendConfig {
    pub api_base: String,
    pub api_key: String,
    pub from: String,
    /// Connect and first-byte timeout for each call, so a Resend that hangs
    /// cannot hold up the request that triggered the delivery.
    pub timeout_ms: u64,
}

impl ResendConfig {
    pub fn from_variables() -> Self {
        let get = |n: &str| spin_sdk::variables::get(n).unwrap_or_default().trim().to_string();
        Self {
            api_base: Some(get("resend_api_base")).filter(|s| !s.is_empty()).unwrap_or_else(|| "https://api.resend.com".into()),
            api_key: get("resend_api_key"),
            from: Some(get("email_from")).filter(|s| !s.is_empty()).unwrap_or_else(|| "Shop <shop@example.com>".into()),
            timeout_ms: get("resend_timeout_ms").parse().ok().filter(|t| (100..=60_000).contains(t)).unwrap_or(5_000),
        }
    }

    pub fn configured(&self) -> bool {
        !self.api_key.is_empty()
    }

    /// One delivery as Resend's email object.
    fn email(&self, d: &Delivery) -> serde_json::Value {
        let mut email = json!({
            "from": self.from,
            "to": [d.recipient],
            "subject": d.subject,
            "html": d.html,
            "text": d.text,
            "tags": [{ "name": "event", "value": d.event_type.replace('.', "_") }],
        });
        if let Some(headers) = d.headers.as_deref().and_then(|h| serde_json::from_str::<serde_json::Value>(h).ok()) {
            email["headers"] = headers;
        }
        email
    }

    /// POST `body` to `path` with this idempotency key, in `trace` (see
    /// [`EventTrace`]): the status, the parsed answer and `Retry-After`, or
    /// the outcome of a failed call.
    fn post(&self, path: &str, body: &serde_json::Value, key: &str, trace: &EventTrace, extra: &[(&'static str, String)]) -> Result<(u16, serde_json::Value, Option<String>), Attempt> {
        let url = format!("{}{path}", self.api_base.trim_end_matches('/'));
        let mut headers = vec![
            ("authorization", format!("Bearer {}", self.api_key)),
            ("content-type", "application/json".to_string()),
            ("idempotency-key", key.to_string()),
        ];
        headers.extend(extra.iter().cloned());
        headers.extend(trace.headers());
        match http_kit::outbound::send_with_timeouts("POST", &url, &headers, Some(body.to_string().as_bytes()), self.timeout_ms) {
            Ok(a) => Ok((a.status, serde_json::from_slice(&a.body).unwrap_or_default(), a.retry_after)),
            Err(e) => Err(Attempt::Retry { after_secs: None, error: format!("network: {e}") }),
        }
    }

    /// Send one delivery and classify the answer.
    pub fn send(&self, d: &Delivery) -> Attempt {
        match self.post("/emails", &self.email(d), &d.idempotency_key, &d.trace, &[]) {
            Ok((status, answer, retry_after)) => classify(status, &answer, retry_after, |a| a["id"].as_str().map(str::to_string)),
            Err(failed) => failed,
        }
    }

    /// Send up to 100 deliveries in one call to Resend's batch endpoint
    /// (`POST /emails/batch`) under the batch's `Idempotency-Key` (see
    /// `deliveries::renew_batch`); one outcome per delivery, in order.
    /// Permissive validation (`x-batch-validation: permissive`): an email
    /// Resend will not create fails alone, named in `errors` by its index,
    /// and the others go out (found in review: in the default strict mode
    /// one bad address failed the whole batch of 100 for good).
    pub fn send_batch(&self, ds: &[Delivery], key: &str) -> Vec<Attempt> {
        let body = serde_json::Value::Array(ds.iter().map(|d| self.email(d)).collect());
        match self.post("/emails/batch", &body, key, &EventTrace::default(), &[("x-batch-validation", "permissive".to_string())]) {
            Ok((status, answer, _)) if (200..300).contains(&status) => batch_outcomes(ds.len(), &answer),
            Ok((status, answer, retry_after)) => (0..ds.len()).map(|_| classify(status, &answer, retry_after.clone(), |_| None)).collect(),
            Err(failed) => ds.iter().map(|_| failed.clone()).collect(),
        }
    }
}

/// The outcome of each of `n` emails of a batch Resend accepted: those
/// its `errors` name (by index) were refused, the others were created, and
/// `data` holds their ids in the same order.
fn batch_outcomes(n: usize, answer: &serde_json::Value) -> Vec<Attempt> {
    let refused: std::collections::HashMap<usize, String> = answer["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| Some((usize::try_from(e["index"].as_u64()?).ok()?, e["message"].as_str().unwrap_or("refused").to_string())))
                .collect()
        })
        .unwrap_or_default();
    let mut ids = answer["data"].as_array().into_iter().flatten().map(|d| d["id"].as_str().map(str::to_string));
    (0..n)
        .map(|i| match refused.get(&i) {
            Some(message) => Attempt::Permanent { error: format!("422 {message}") },
            None => Attempt::Sent { provider_id: ids.next().flatten() },
        })
        .collect()
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_email_of_a_batch_fails_alone() {
        let answer = json!({ "data": [{ "id": "e0" }, { "id": "e2" }], "errors": [{ "index": 1, "message": "The `to` field is invalid." }] });
        let outcomes = batch_outcomes(3, &answer);
        assert!(matches!(&outcomes[0], Attempt::Sent { provider_id: Some(p) } if p == "e0"));
        assert!(matches!(&outcomes[1], Attempt::Permanent { error } if error.contains("invalid")));
        assert!(matches!(&outcomes[2], Attempt::Sent { provider_id: Some(p) } if p == "e2"), "ids follow the created ones: {:?}", outcomes[2]);
    }

    #[test]
    fn only_a_request_still_in_progress_is_a_409_worth_retrying() {
        let id = |a: &serde_json::Value| a["id"].as_str().map(str::to_string);
        let busy = json!({ "name": "concurrent_idempotent_requests", "message": "in progress", "statusCode": 409 });
        assert!(matches!(classify(409, &busy, None, id), Attempt::Retry { .. }));
        assert!(!classify(409, &busy, None, id).provider_failing(), "its own request, not Resend failing");
        assert!(classify(503, &json!({}), None, id).provider_failing());
        let reused = json!({ "name": "invalid_idempotent_request", "message": "other payload", "statusCode": 409 });
        assert!(matches!(classify(409, &reused, None, id), Attempt::Permanent { .. }));
        assert!(matches!(classify(429, &json!({}), Some("3".into()), id), Attempt::Retry { after_secs: Some(3), .. }));
        assert!(matches!(classify(200, &json!({ "id": "e1" }), None, id), Attempt::Sent { provider_id: Some(ref p) } if p == "e1"));
    }

    /// Found in review: a revoked key or an unverified domain failed every
    /// queued email for good. They are the account's, retried later, and
    /// the sweep's other emails are handed back.
    #[test]
    fn the_shop_s_account_refused_is_retried_later() {
        let id = |a: &serde_json::Value| a["id"].as_str().map(str::to_string);
        for status in [401, 403] {
            let refused = classify(status, &json!({ "name": "invalid_api_key", "message": "API key is invalid" }), None, id);
            assert!(matches!(refused, Attempt::Retry { after_secs: Some(ACCOUNT_RETRY_SECS), .. }), "{status}: {refused:?}");
            assert!(refused.provider_failing());
        }
        assert!(matches!(classify(422, &json!({ "name": "validation_error" }), None, id), Attempt::Permanent { .. }), "this email's own problem");
    }
}
