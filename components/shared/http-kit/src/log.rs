//! One structured log line per request, as JSON on stdout.
//!
//! Spin forwards component stdout to its log; a JSON line per request with the
//! request id lets an operator find everything about one call.

use serde_json::json;

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

impl RequestLog<'_> {
    /// Render the line.
    pub fn line(&self) -> String {
        let level = if self.status >= 500 { "error" } else if self.status >= 400 { "warn" } else { "info" };
        let mut v = json!({
            "ts": clock::now_rfc3339(),
            "level": level,
            "service": self.service,
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "duration_ms": self.duration_ms as u64,
        });
        if let Some((trace_id, span_id)) = self.trace {
            v["trace_id"] = json!(trace_id);
            v["span_id"] = json!(span_id);
        }
        if let Some(cause) = self.internal_error {
            v["error"] = json!(cause);
        }
        v.to_string()
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
