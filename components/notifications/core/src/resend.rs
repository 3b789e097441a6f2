//! Resend's email API: `POST {resend_api_base}/emails` with a bearer key,
//! a JSON body and an `Idempotency-Key`.

use crate::deliveries::{Attempt, Delivery};
use serde_json::json;

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

    /// Send one delivery and classify the answer.
    pub fn send(&self, d: &Delivery) -> Attempt {
        let body = json!({
            "from": self.from,
            "to": [d.recipient],
            "subject": d.subject,
            "html": d.html,
            "text": d.text,
            "tags": [{ "name": "event", "value": d.event_type.replace('.', "_") }],
        });
        let url = format!("{}/emails", self.api_base.trim_end_matches('/'));
        let headers = [
            ("authorization", format!("Bearer {}", self.api_key)),
            ("content-type", "application/json".to_string()),
            ("idempotency-key", d.idempotency_key.clone()),
        ];
        let (status, retry_after, body_bytes) = match http_kit::outbound::send_with_timeouts("POST", &url, &headers, Some(body.to_string().as_bytes()), self.timeout_ms) {
            Ok(a) => (a.status, a.retry_after, a.body),
            Err(e) => return Attempt::Retry { after_secs: None, error: format!("network: {e}") },
        };
        let answer: serde_json::Value = serde_json::from_slice(&body_bytes).unwrap_or_default();
        let message = answer["message"].as_str().unwrap_or("").to_string();
        match status {
            200..=299 => Attempt::Sent { provider_id: answer["id"].as_str().map(str::to_string) },
            429 | 500..=599 => {
                let after = retry_after.and_then(|v| v.trim().parse::<i64>().ok());
                Attempt::Retry { after_secs: after, error: format!("{status} {message}") }
            }
            _ => Attempt::Permanent { error: format!("{status} {message}") },
        }
    }
}

