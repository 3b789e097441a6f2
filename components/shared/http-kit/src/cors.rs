//! CORS for browser storefronts.
//!
//! Allowed origins come from the `cors_allowed_origins` Spin variable: a
//! comma-separated list of exact origins (`https://shop.example.com`), or `*`
//! to allow any origin. An empty list allows none, which is the safe default
//! for a deployment nobody configured.

/// Methods the API uses; advertised on preflight.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
/// Request headers storefronts may send.
pub const ALLOWED_HEADERS: &str =
    "authorization, content-type, idempotency-key, if-none-match, x-cart-token, x-request-id";
/// Response headers a browser script may read.
pub const EXPOSED_HEADERS: &str = "etag, retry-after, x-cart-token, x-request-id, location, idempotent-replayed";
/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE_SECS: u32 = 600;

/// The configured origin policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    AnyOrigin,
    Origins(Vec<String>),
}

impl CorsPolicy {
    /// Parse the variable's value.
    pub fn parse(raw: &str) -> Self {
        let origins: Vec<String> = raw
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        if origins.iter().any(|o| o == "*") {
            Self::AnyOrigin
        } else {
            Self::Origins(origins)
        }
    }

    /// The `access-control-allow-origin` value for a request's `Origin`, if allowed.
    pub fn allow_origin(&self, origin: Option<&str>) -> Option<String> {
        let origin = origin?.trim();
        if origin.is_empty() {
            return None;
        }
        match self {
            Self::AnyOrigin => Some("*".to_string()),
            Self::Origins(list) => list
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
                .then(|| origin.to_string()),
        }
    }

    /// CORS headers for a response to a request with this `Origin` (none
    /// when it is not allowed). `Vary: Origin` is not among them: every
    /// response carries it, with an `Origin` or without (see `service`).
    pub fn response_headers(&self, origin: Option<&str>, preflight: bool) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        let Some(allow) = self.allow_origin(origin) else { return headers };
        headers.push(("access-control-allow-origin", allow));
        if preflight {
            headers.push(("access-control-allow-methods", ALLOWED_METHODS.to_string()));
            headers.push(("access-control-allow-headers", ALLOWED_HEADERS.to_string()));
            headers.push(("access-control-max-age", MAX_AGE_SECS.to_string()));
        } else {
            headers.push(("access-control-expose-headers", EXPOSED_HEADERS.to_string()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_origins_are_matched_case_insensitively() {
        let p = CorsPolicy::parse(" https://Shop.example.com/ , http://localhost:5173");
        assert_eq!(p.allow_origin(Some("https://shop.example.com")).as_deref(), Some("https://shop.example.com"));
        assert_eq!(p.allow_origin(Some("http://localhost:5173")).as_deref(), Some("http://localhost:5173"));
        assert_eq!(p.allow_origin(Some("https://evil.example.com")), None);
        assert_eq!(p.allow_origin(None), None);
    }

    #[test]
    fn star_allows_any_and_empty_allows_none() {
        assert_eq!(CorsPolicy::parse("*").allow_origin(Some("https://x.test")).as_deref(), Some("*"));
        assert_eq!(CorsPolicy::parse("").allow_origin(Some("https://x.test")), None);
    }

    #[test]
    fn preflight_headers_list_methods_and_headers() {
        let p = CorsPolicy::parse("*");
        let h = p.response_headers(Some("https://x.test"), true);
        assert!(h.iter().any(|(k, v)| *k == "access-control-allow-methods" && v.contains("POST")));
        assert!(h.iter().any(|(k, v)| *k == "access-control-allow-headers" && v.contains("authorization")));
        let denied = CorsPolicy::parse("").response_headers(Some("https://x.test"), true);
        assert!(denied.is_empty());
    }
}
