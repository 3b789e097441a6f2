//! The parsed request a handler sees.

use crate::body::Body;
use crate::error::{ApiError, ErrorCode};
use crate::query::Query;
use serde::de::DeserializeOwned;

/// Default cap on JSON request bodies. Shop payloads are small; anything
/// larger is a mistake or an attack.
pub const DEFAULT_JSON_LIMIT: usize = 64 * 1024;

/// A request, parsed once at the edge.
#[derive(Debug)]
pub struct Ctx {
    /// Upper-case method; `HEAD` is routed as `GET` (the body is dropped later).
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: Query,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// Read on demand, within a limit: [`Ctx::body_limited`].
    pub body: Body,
    pub request_id: String,
}

impl Ctx {
    /// The non-empty path segments: `/api/products/42` → `["api", "products", "42"]`.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }


    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The last field named `name`: for a header Spin sets (`spin-*`).
    /// Spin appends its own after any field of that name the client sent,
    /// so only the last one is Spin's.
    pub fn spin_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every field named `name`, in order, joined with `, `: a list header
    /// (`X-Forwarded-For`) may arrive as several fields, which mean the
    /// same as one field with their values comma-separated (RFC 9110,
    /// 5.3). [`Self::header`] would read the first alone, which a proxy
    /// that adds its own field rather than appending to the client's leaves
    /// under the client's control.
    pub fn header_list(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// Parse the body as JSON into `T`, with the default size limit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.json_limited(DEFAULT_JSON_LIMIT)
    }

    /// Parse the body as JSON into `T`, refusing bodies over `limit` bytes.
    pub fn json_limited<T: DeserializeOwned>(&self, limit: usize) -> Result<T, ApiError> {
        parse_json_body(self.header("content-type"), self.body_limited(limit)?, limit)
    }

    /// The raw body, or a 413 once it passes `limit` bytes (refused by its
    /// `Content-Length` before reading, or while it is read).
    pub fn body_limited(&self, limit: usize) -> Result<&[u8], ApiError> {
        self.body.get(limit, self.header("content-length"))
    }
}

/// The request's `Idempotency-Key`, if sent: 1–255 visible ASCII
/// characters, else a 400 (a key that cannot be honoured is never ignored).
pub fn idempotency_key(ctx: &Ctx) -> Result<Option<String>, ApiError> {
    let Some(raw) = ctx.header("idempotency-key").map(str::trim) else { return Ok(None) };
    let ok = !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        Ok(Some(raw.to_string()))
    } else {
        Err(ApiError::invalid_parameter("Idempotency-Key", "must be 1-255 visible ASCII characters"))
    }
}

/// The JSON body rules, separate from `Ctx` so they can be tested directly:
/// 413 over the limit, 415 for a non-JSON content type, 400 naming the problem
/// for an empty or malformed body.
pub fn parse_json_body<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<T, ApiError> {
    if body.len() > limit {
        return Err(crate::body::too_large(format!("request body is {} bytes; the limit is {limit}", body.len()), limit));
    }
    if let Some(ct) = content_type {
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::of(
                ErrorCode::UnsupportedMediaType,
                format!("content-type `{essence}` is not supported; send application/json"),
            ));
        }
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::of(ErrorCode::InvalidJson, "request body is empty; expected a JSON object"));
    }
    if has_escaped_nul(body) {
        // No field takes one, and Postgres refuses NUL in text: without
        // this, a `\u0000` reaching a query was a 500 on Postgres.
        return Err(ApiError::of(ErrorCode::InvalidJson, "request body has a NUL character (\\u0000) in a string; no field accepts one"));
    }
    let invalid = |e: serde_json::Error| ApiError::of(ErrorCode::InvalidJson, format!("request body is not valid: {e}"));
    // The typed parse first: one pass for the bodies clients send. Only a
    // body it refuses is read again as a JSON value, to see whether an
    // integral float (`2.0`) was all that stood in the way.
    let direct = match serde_json::from_slice::<T>(body) {
        Ok(parsed) => return Ok(parsed),
        Err(e) => e,
    };
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if !integral_numbers_as_integers(&mut value) {
        return Err(invalid(direct));
    }
    T::deserialize(value).map_err(invalid)
}

/// JSON has one number type: `2.0` is the integer 2 (JSON Schema agrees,
/// and so do clients that write every number with a decimal point). Such
/// numbers become integers before the body meets its Rust type, so an
/// integer field accepts them; `2.5` stays a fraction and is refused there.
/// Whether any number changed.
fn integral_numbers_as_integers(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            // Exactly representable integers only (|f| < 2^53 keeps every
            // digit the client wrote).
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                    *v = serde_json::Value::from(f as i64);
                    true
                }
                _ => false,
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().fold(false, |changed, item| integral_numbers_as_integers(item) | changed),
        serde_json::Value::Object(fields) => fields.values_mut().fold(false, |changed, field| integral_numbers_as_integers(field) | changed),
        _ => false,
    }
}

/// Does this JSON text hold the escape `\u0000` (the only way JSON can
/// carry a NUL)? An escape is a `\` preceded by an even number of `\`.
fn has_escaped_nul(body: &[u8]) -> bool {
    body.windows(6).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(b"\\u0000") && body[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Item {
        sku: String,
        quantity: u32,
    }

    #[test]
    fn a_list_header_sent_as_several_fields_is_read_whole() {
        let ctx = Ctx {
            method: "GET".into(),
            path: "/".into(),
            query: Query::default(),
            headers: [("x-forwarded-for", "6.6.6.6"), ("accept", "*/*"), ("X-Forwarded-For", "1.2.3.4, 10.0.0.1")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: crate::body::Body::from_bytes(Vec::new()),
            request_id: "t".into(),
        };
        assert_eq!(ctx.header_list("x-forwarded-for").as_deref(), Some("6.6.6.6, 1.2.3.4, 10.0.0.1"));
        assert_eq!(ctx.header("x-forwarded-for"), Some("6.6.6.6"), "header reads the first field alone");
        assert_eq!(ctx.header_list("forwarded"), None);
    }

    #[test]
    fn parses_a_valid_body() {
        let item: Item = parse_json_body(Some("application/json; charset=utf-8"), br#"{"sku":"A","quantity":2}"#, 100).unwrap();
        assert_eq!(item, Item { sku: "A".into(), quantity: 2 });
    }

    #[test]
    fn integral_numbers_written_with_a_decimal_point_are_integers() {
        let item: Item = parse_json_body(None, br#"{"sku":"A","quantity":2.0}"#, 100).unwrap();
        assert_eq!(item.quantity, 2);
        let e = parse_json_body::<Item>(None, br#"{"sku":"A","quantity":2.5}"#, 100).unwrap_err();
        assert_eq!(e.status, 400);
        let e = parse_json_body::<Item>(None, br#"{"sku":"A","quantity":1e300}"#, 100).unwrap_err();
        assert_eq!(e.status, 400, "too big for any integer");
        let e = parse_json_body::<Item>(None, br#"{"sku":"A","quantity":-0.0}"#, 100);
        assert_eq!(e.unwrap().quantity, 0);
    }

    #[test]
    fn names_the_problem() {
        let e = parse_json_body::<Item>(None, br#"{"sku":"A"}"#, 100).unwrap_err();
        assert_eq!((e.status, e.code.as_ref()), (400, "invalid_json"));
        assert!(e.message.contains("quantity"), "{}", e.message);

        let e = parse_json_body::<Item>(None, br#"{"sku":"A","quantity":-1}"#, 100).unwrap_err();
        assert_eq!(e.status, 400);

        let e = parse_json_body::<Item>(None, br#"{"sku":"A","quantity":1,"price":0}"#, 100).unwrap_err();
        assert!(e.message.contains("price"), "{}", e.message);

        let e = parse_json_body::<Item>(None, b"{not json", 100).unwrap_err();
        assert_eq!(e.status, 400);

        let e = parse_json_body::<Item>(None, b"  ", 100).unwrap_err();
        assert!(e.message.contains("empty"));
    }

    #[test]
    fn a_nul_in_any_string_is_refused() {
        // Regression: on Postgres a NUL in a text parameter was a 500.
        let e = parse_json_body::<serde_json::Value>(None, br#"{"order_id":"a\u0000b"}"#, 100).unwrap_err();
        assert_eq!((e.status, e.code.as_ref()), (400, "invalid_json"));
        assert!(parse_json_body::<serde_json::Value>(None, br#"{"k\u0000":1}"#, 100).is_err(), "keys too");
        assert!(parse_json_body::<serde_json::Value>(None, br#"["\\\u0000"]"#, 100).is_err(), "after an escaped backslash");
        // A backslash followed by the text `u0000` is no NUL.
        let v: serde_json::Value = parse_json_body(None, br#"{"note":"\\u0000"}"#, 100).unwrap();
        assert_eq!(v["note"], "\\u0000");
    }

    #[test]
    fn oversized_and_wrong_type_bodies() {
        let e = parse_json_body::<Item>(None, &[b' '; 101], 100).unwrap_err();
        assert_eq!((e.status, e.code.as_ref()), (413, "payload_too_large"));
        let e = parse_json_body::<Item>(Some("text/plain"), b"{}", 100).unwrap_err();
        assert_eq!(e.status, 415);
        assert!(parse_json_body::<serde_json::Value>(Some("application/merge-patch+json"), b"{}", 100).is_ok());
    }

    #[test]
    fn segments_skip_empty_parts() {
        let ctx = Ctx {
            method: "GET".into(),
            path: "/api//products/42/".into(),
            query: Query::default(),
            headers: vec![("X-Thing".into(), "1".into())],
            body: Body::from_bytes(vec![]),
            request_id: "r".into(),
        };
        assert_eq!(ctx.segments(), vec!["api", "products", "42"]);
        assert_eq!(ctx.header("x-thing"), Some("1"));
    }
}


/// A request path with its percent-escapes decoded (`%3A` is `:`), as the
/// routers and handlers see it; `+` stays a plus, as in any path. An escape
/// that does not decode to UTF-8, or decodes to a NUL (which Postgres
/// refuses in text: `/api/orders/%00` was a 500 there), is kept as written,
/// so such a path matches no id and answers as any malformed one does.
pub fn decode_path(raw: &str) -> String {
    if !raw.contains('%') {
        return raw.to_string();
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().filter(|p| !p.contains('\0')).unwrap_or_else(|| raw.to_string())
}

#[cfg(test)]
mod path_tests {
    use super::decode_path;

    #[test]
    fn escapes_decode_and_nothing_else_changes() {
        assert_eq!(decode_path("/api/inventory/reservations/ord%3A1/release"), "/api/inventory/reservations/ord:1/release");
        assert_eq!(decode_path("/a+b/%zz/%4"), "/a+b/%zz/%4");
        assert_eq!(decode_path("/%FF"), "/%FF", "not UTF-8: kept as written");
        assert_eq!(decode_path("/caf%C3%A9"), "/café");
        assert_eq!(decode_path("/api/orders/%00"), "/api/orders/%00", "a NUL: kept as written");
    }
}
