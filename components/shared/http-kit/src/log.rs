//! One structured log line per request, as JSON on stdout.
//!
//! Spin forwards component stdout to its log; a JSON line per request with the
//! request id lets an operator find everything about one call.

use serde_json::json;

/// The facts logged about one finished request.
pub struct RequestLog<'a> {
    pub service: &'a str,
    pub request_id: &'a str,
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
        assert_eq!(v["level"], "error");
        assert_eq!(v["error"], "boom\nsecond line");
    }
}
