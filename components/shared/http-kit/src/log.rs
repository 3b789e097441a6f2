//! One structured log line per request, as JSON on stdout.
//!
//! Spin forwards component stdout to its log; a JSON line per request with the
//! request id lets an operator find everything about one call.

use serde::Serialize;

/// The facts logged about one finished request.
pub struct RequestLog<'a> {
    pub service: &'a str,
    pub request_id: &'a str,
    /// The request's W3C trace id and span id ([`crate::trace`]), so the
    /// line can be found from a trace and the trace from the line.
    pub trace: Option<(&'a str, &'a str)>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: u128,
    /// The cause of a 500, never sent to the client.
    pub internal_error: Option<&'a str>,
}

/// The line as written: serialised straight from borrowed fields, with no
/// JSON tree built first (one line per request, so it is on the hot path).
#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    level: &'static str,
    service: &'a str,
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl RequestLog<'_> {
    /// Render the line.
    pub fn line(&self) -> String {
        let level = if self.status >= 500 { "error" } else if self.status >= 400 { "warn" } else { "info" };
        let line = Line {
            ts: clock::now_rfc3339(),
            level,
            service: self.service,
            request_id: self.request_id,
            method: self.method,
            path: self.path,
            status: self.status,
            duration_ms: u64::try_from(self.duration_ms).unwrap_or(u64::MAX),
            trace_id: self.trace.map(|(t, _)| t),
            span_id: self.trace.map(|(_, s)| s),
            error: self.internal_error,
        };
        // Serialising borrowed strings and integers cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Write the line to stdout.
    pub fn emit(&self) {
        println!("{}", self.line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_one_json_object_with_the_request_id() {
        let l = RequestLog {
            service: "catalog",
            request_id: "abc",
            trace: Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")),
            method: "GET",
            path: "/api/products",
            status: 500,
            duration_ms: 3,
            internal_error: Some("boom\nsecond line"),
        }
        .line();
        assert!(!l.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["span_id"], "00f067aa0ba902b7");
        assert_eq!(v["level"], "error");
        assert_eq!(v["error"], "boom\nsecond line");
    }
}
