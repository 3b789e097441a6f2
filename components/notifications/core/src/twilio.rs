//! Twilio's Programmable Messaging API: `POST
//! {twilio_api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP
//! basic auth with the account SID and auth token, a form-encoded body
//! (`To`, `From`, `Body`). Success is 201 with the message `sid`.
//!
//! Errors, as Twilio documents them for its REST API: 429 (rate limited,
//! honour `Retry-After`) and 5xx are transient and retried with backoff;
//! every other 4xx (bad number, unverified sender, auth) is permanent.
//! Twilio's message create has no idempotency key: a retry after a 5xx or
//! a timeout whose request Twilio did in fact accept can send the SMS
//! twice (Twilio's error 20500 page says so of POSTs). The delivery lease
//! still guarantees one sender at a time, so only that ambiguous case can
//! duplicate.

use crate::deliveries::{Attempt, Delivery};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Twilio settings from Spin variables.
pub struct TwilioConfig {
    pub api_base: String,
    pub account_sid: String,
    pub auth_token: String,
    /// The sending number (E.164) or a Messaging Service SID (`MG...`).
    pub from: String,
    pub timeout_ms: u64,
}

impl TwilioConfig {
    pub fn from_variables() -> Self {
        Self::from_getter(&|n: &str| spin_sdk::variables::get(n).unwrap_or_default())
    }

    pub fn from_getter(get: &dyn Fn(&str) -> String) -> Self {
        let get = |n: &str| get(n).trim().to_string();
        Self {
            api_base: Some(get("twilio_api_base")).filter(|s| !s.is_empty()).unwrap_or_else(|| "https://api.twilio.com".into()),
            account_sid: get("twilio_account_sid"),
            auth_token: get("twilio_auth_token"),
            from: get("sms_from"),
            timeout_ms: get("twilio_timeout_ms").parse().ok().filter(|t| (100..=60_000).contains(t)).unwrap_or(5_000),
        }
    }

    /// SMS go to Twilio only with a SID, a token and a sender; otherwise to the local log.
    pub fn configured(&self) -> bool {
        !self.account_sid.is_empty() && !self.auth_token.is_empty() && !self.from.is_empty()
    }

    /// The form body of one message.
    pub fn form(&self, d: &Delivery) -> String {
        let from_field = if self.from.starts_with("MG") { "MessagingServiceSid" } else { "From" };
        form_urlencoded::Serializer::new(String::new())
            .append_pair("To", &d.recipient)
            .append_pair(from_field, &self.from)
            .append_pair("Body", d.text.as_deref().unwrap_or(""))
            .finish()
    }

    /// Send one SMS delivery and classify the answer.
    pub fn send(&self, d: &Delivery) -> Attempt {
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", self.api_base.trim_end_matches('/'), self.account_sid);
        let mut headers = vec![
            ("authorization", format!("Basic {}", STANDARD.encode(format!("{}:{}", self.account_sid, self.auth_token)))),
            ("content-type", "application/x-www-form-urlencoded".to_string()),
        ];
        // In the trace of the event it was made from (see EventTrace).
        headers.extend(d.trace.headers());
        let body = self.form(d);
        let (status, retry_after, bytes) = match http_kit::outbound::send_with_timeouts("POST", &url, &headers, Some(body.as_bytes()), self.timeout_ms) {
            Ok(a) => (a.status, a.retry_after, a.body),
            Err(e) => return Attempt::Retry { after_secs: None, error: format!("network: {e}") },
        };
        classify(status, retry_after.as_deref(), &bytes)
    }
}

/// Twilio's answer as an attempt outcome. Errors read `{code, message}`.
pub fn classify(status: u16, retry_after: Option<&str>, body: &[u8]) -> Attempt {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let reason = match (answer["code"].as_i64(), answer["message"].as_str()) {
        (Some(code), Some(m)) => format!("{status} Twilio error {code}: {m}"),
        (_, Some(m)) => format!("{status} {m}"),
        _ => status.to_string(),
    };
    match status {
        200..=299 => Attempt::Sent { provider_id: answer["sid"].as_str().map(str::to_string) },
        // About the shop's account (a wrong, rotated or revoked auth token, a
        // suspended account), not this message: tried again later, as
        // Resend's are, instead of failing every queued SMS for good until
        // someone fixes the variable (found in review).
        401 | 403 => Attempt::Retry {
            after_secs: Some(crate::resend::ACCOUNT_RETRY_SECS),
            error: format!("{reason} (the shop's Twilio account refused it: check twilio_account_sid and twilio_auth_token)"),
        },
        429 | 500..=599 => Attempt::Retry { after_secs: retry_after.and_then(|v| v.trim().parse().ok()), error: reason },
        _ => Attempt::Permanent { error: reason },
    }
}

/// Settings problems, for `/health`.
pub fn configuration_problems(get: &dyn Fn(&str) -> String, p: &mut http_kit::settings::Problems) {
    p.http_url(get, "twilio_api_base");
    p.whole_number(get, "twilio_timeout_ms", 100..=60_000, "milliseconds");
    let set: Vec<&str> = ["twilio_account_sid", "twilio_auth_token", "sms_from"].into_iter().filter(|n| !get(n).trim().is_empty()).collect();
    if !set.is_empty() && set.len() < 3 {
        p.add(format!("{} set but not all of twilio_account_sid, twilio_auth_token and sms_from: SMS go to the local log until all three are", set.join(", ")));
    }
    let from = get("sms_from");
    let from = from.trim();
    let e164 = from.strip_prefix('+').is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    if !from.is_empty() && !e164 && !from.starts_with("MG") {
        p.add(format!("sms_from is {from:?}; it must be a phone number in E.164 form (+14155550123) or a Messaging Service SID (MG...)"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(to: &str, text: &str) -> Delivery {
        crate::test_support::claimed_sms(to, text)
    }

    fn config(from: &str) -> TwilioConfig {
        TwilioConfig { api_base: "x".into(), account_sid: "AC1".into(), auth_token: "t".into(), from: from.into(), timeout_ms: 1 }
    }

    #[test]
    fn forms_are_encoded() {
        let d = delivery("+14155550123", "Shop & Co: 10.00 USD refunded, ok?");
        assert_eq!(config("+15005550006").form(&d), "To=%2B14155550123&From=%2B15005550006&Body=Shop+%26+Co%3A+10.00+USD+refunded%2C+ok%3F");
        assert!(config("MG123").form(&d).contains("&MessagingServiceSid=MG123&"));
    }

    #[test]
    fn answers_are_classified_as_twilio_documents() {
        assert_eq!(classify(201, None, br#"{"sid":"SM1","status":"queued"}"#), Attempt::Sent { provider_id: Some("SM1".into()) });
        assert_eq!(
            classify(429, Some("7"), br#"{"code":20429,"message":"Too Many Requests"}"#),
            Attempt::Retry { after_secs: Some(7), error: "429 Twilio error 20429: Too Many Requests".into() }
        );
        assert!(matches!(classify(503, None, b""), Attempt::Retry { after_secs: None, .. }));
        assert_eq!(
            classify(400, None, br#"{"code":21211,"message":"Invalid 'To' Phone Number","status":400}"#),
            Attempt::Permanent { error: "400 Twilio error 21211: Invalid 'To' Phone Number".into() }
        );
        assert!(matches!(classify(401, None, b"{}"), Attempt::Retry { after_secs: Some(crate::resend::ACCOUNT_RETRY_SECS), .. }), "the account, not the message");
        assert!(classify(403, None, b"{}").provider_failing(), "the rest of the sweep's SMS are handed back");
    }

    #[test]
    fn half_configured_twilio_is_reported() {
        let get = |vars: &'static [(&'static str, &'static str)]| move |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()).unwrap_or_default();
        let mut p = http_kit::settings::Problems::default();
        configuration_problems(&get(&[("twilio_account_sid", "AC1")]), &mut p);
        assert_eq!(p.0.len(), 1, "{:?}", p.0);
        let mut p = http_kit::settings::Problems::default();
        configuration_problems(&get(&[("twilio_account_sid", "AC1"), ("twilio_auth_token", "t"), ("sms_from", "0123")]), &mut p);
        assert_eq!(p.0.len(), 1, "{:?}", p.0);
        let mut p = http_kit::settings::Problems::default();
        configuration_problems(&get(&[]), &mut p);
        assert!(p.0.is_empty());
        assert!(!TwilioConfig::from_getter(&get(&[("twilio_account_sid", "AC1")])).configured());
    }
}
