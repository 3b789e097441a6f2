//! The one error envelope every service answers with.
//!
//! ```json
//! {"error": {"code": "invalid_parameter", "message": "...", "details": {...}, "request_id": "..."}}
//! ```
//!
//! `code` is a stable, machine-readable snake_case string that clients can
//! branch on; `message` is for humans; `details` is optional structured data
//! (the offending parameter, the available stock, ...). A 500 never carries
//! internal details: the cause is logged with the request id instead.

use serde_json::{json, Value};
use std::borrow::Cow;

/// Well-known error codes shared by all services. Services may use their own
/// domain codes (`out_of_stock`, ...) through [`ApiError::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    InvalidJson,
    InvalidParameter,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    Unprocessable,
    RateLimited,
    Internal,
    ServiceUnavailable,
}

impl ErrorCode {
    /// The HTTP status this code is always sent with.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest | Self::InvalidJson | Self::InvalidParameter => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Unprocessable => 422,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::ServiceUnavailable => 503,
        }
    }

    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidJson => "invalid_json",
            Self::InvalidParameter => "invalid_parameter",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::Unprocessable => "unprocessable",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal_error",
            Self::ServiceUnavailable => "service_unavailable",
        }
    }
}

/// An error on its way to becoming the JSON envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: Cow<'static, str>,
    pub message: String,
    pub details: Option<Value>,
    /// Extra response headers (`Allow`, `Retry-After`, ...).
    pub headers: Vec<(String, String)>,
    /// The real cause of a 500, logged but never sent.
    pub internal: Option<String>,
}

impl ApiError {
    /// An error with a service-specific code, e.g. `("out_of_stock", 409)`.
    pub fn new(status: u16, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: None,
            headers: Vec::new(),
            internal: None,
        }
    }

    /// An error with one of the shared codes.
    pub fn of(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code.status(), code.as_str(), message)
    }

    /// Attach structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Attach a response header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// 400 for a query or path parameter that does not parse.
    pub fn invalid_parameter(name: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::of(ErrorCode::InvalidParameter, format!("parameter `{name}` {problem}"))
            .with_details(json!({ "parameter": name }))
    }

    /// 422 `validation_failed` listing every field problem in `details.fields`.
    pub fn validation(fields: serde_json::Map<String, Value>) -> Self {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        Self::new(422, "validation_failed", format!("invalid fields: {}", names.join(", ")))
            .with_details(json!({ "fields": fields }))
    }

    /// 404 for a resource that does not exist (or is not the caller's).
    pub fn not_found(what: &str) -> Self {
        Self::of(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 404 for a path no route matches.
    pub fn no_route(path: &str) -> Self {
        Self::of(ErrorCode::NotFound, format!("no route for {path}"))
    }

    /// 405, listing the methods the path does accept.
    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        let allow = allowed.join(", ");
        Self::of(ErrorCode::MethodNotAllowed, format!("method not allowed; use {allow}"))
            .with_header("allow", allow)
    }

    /// Keep the real cause for the log line; it is never sent.
    pub fn with_internal(mut self, cause: impl std::fmt::Display) -> Self {
        self.internal = Some(cause.to_string());
        self
    }

    /// 500: the cause is kept for the log line only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::of(ErrorCode::Internal, "internal error; quote the request id when reporting it").with_internal(cause)
    }

    /// 503 for a dependency that is down or not configured.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(503, code, message)
    }

    /// The JSON envelope for this error.
    pub fn envelope(&self, request_id: &str) -> Value {
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "request_id": request_id,
        });
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        json!({ "error": error })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_code_message_and_request_id() {
        let e = ApiError::invalid_parameter("page", "must be a whole number from 1");
        let v = e.envelope("req-1");
        assert_eq!(e.status, 400);
        assert_eq!(v["error"]["code"], "invalid_parameter");
        assert_eq!(v["error"]["details"]["parameter"], "page");
        assert_eq!(v["error"]["request_id"], "req-1");
        assert!(v["error"]["message"].as_str().unwrap().contains("page"));
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let e = ApiError::internal("disk I/O error at /var/db/catalog.db");
        let body = e.envelope("r").to_string();
        assert_eq!(e.status, 500);
        assert!(!body.contains("disk"));
        assert_eq!(e.internal.as_deref(), Some("disk I/O error at /var/db/catalog.db"));
    }

    #[test]
    fn method_not_allowed_sets_allow_header() {
        let e = ApiError::method_not_allowed(&["GET", "HEAD"]);
        assert_eq!(e.status, 405);
        assert_eq!(e.headers, vec![("allow".to_string(), "GET, HEAD".to_string())]);
    }

    #[test]
    fn every_shared_code_maps_to_a_4xx_or_5xx() {
        use ErrorCode::*;
        for code in [
            BadRequest, InvalidJson, InvalidParameter, PayloadTooLarge, UnsupportedMediaType,
            Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, Unprocessable,
            RateLimited, Internal, ServiceUnavailable,
        ] {
            assert!((400..600).contains(&code.status()), "{code:?}");
            assert!(code.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
}
