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
        let (status, retry_after, body_bytes) = match post_with_timeouts(&url, &headers, body.to_string().as_bytes(), self.timeout_ms) {
            Ok(r) => r,
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

/// `POST` with connect, first-byte and between-bytes timeouts. Written on the
/// raw `wasi:http` bindings because the SDK's `send` cannot set request
/// options. Returns the status, any `Retry-After`, and the body.
fn post_with_timeouts(url: &str, headers: &[(&str, String)], body: &[u8], timeout_ms: u64) -> Result<(u16, Option<String>, Vec<u8>), String> {
    use spin_sdk::wit::wasi::http0_2_0::{outgoing_handler, types};
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("not a URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fields: Vec<(String, Vec<u8>)> = headers.iter().map(|(k, v)| (k.to_string(), v.clone().into_bytes())).collect();
    let request = types::OutgoingRequest::new(types::Fields::from_list(&fields).map_err(|e| format!("headers: {e:?}"))?);
    request.set_method(&types::Method::Post).map_err(|_| "method refused")?;
    let scheme = if scheme.eq_ignore_ascii_case("https") { types::Scheme::Https } else { types::Scheme::Http };
    request.set_scheme(Some(&scheme)).map_err(|_| "scheme refused")?;
    request.set_authority(Some(authority)).map_err(|_| "authority refused")?;
    request.set_path_with_query(Some(path)).map_err(|_| "path refused")?;
    let outgoing = request.body().map_err(|_| "no request body")?;
    let options = types::RequestOptions::new();
    let ns = timeout_ms.saturating_mul(1_000_000);
    // A host that does not support an option keeps its default; that is fine.
    let _ = options.set_connect_timeout(Some(ns));
    let _ = options.set_first_byte_timeout(Some(ns));
    let _ = options.set_between_bytes_timeout(Some(ns));
    let pending = outgoing_handler::handle(request, Some(options)).map_err(|e| format!("{e:?}"))?;
    {
        let stream = outgoing.write().map_err(|_| "request body stream")?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| format!("writing the body: {e:?}"))?;
        }
    }
    types::OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(format!("{e:?}")),
        _ => return Err("no response".into()),
    };
    let status = response.status();
    let retry_after = response.headers().get(&"retry-after".to_string()).first().map(|v| String::from_utf8_lossy(v).into_owned());
    let incoming = response.consume().map_err(|_| "no response body")?;
    let mut bytes = Vec::new();
    {
        let stream = incoming.stream().map_err(|_| "response body stream")?;
        // Ends with `closed` at the end of the body (or on an error; the
        // status has already been read either way).
        while let Ok(chunk) = stream.blocking_read(64 * 1024) {
            bytes.extend(chunk);
        }
    }
    Ok((status, retry_after, bytes))
}
