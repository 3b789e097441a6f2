//! Conditional GETs: a strong `ETag` computed from the response body, and a
//! `304 Not Modified` when the client already holds that representation.
//!
//! Hashing the body costs microseconds for catalog-sized JSON and needs no
//! version bookkeeping in the database, so every public GET can use it.

use crate::request::Ctx;
use crate::response::Reply;

/// A strong entity tag for a body. The hash only has to be stable within one
/// build: a deploy that changes tags merely costs clients one full response.
pub fn etag_for(body: &[u8]) -> String {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    h.write(body);
    format!("\"{:016x}\"", h.finish())
}

/// Does an `If-None-Match` header match this tag? Handles lists, `*` and weak tags.
pub fn if_none_match_matches(header: &str, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    header.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

/// Add `ETag` and `Cache-Control` to a 200 reply, or turn it into a 304.
pub fn cacheable(ctx: &Ctx, reply: Reply, cache_control: &str) -> Reply {
    if reply.status != 200 {
        return reply;
    }
    let etag = etag_for(&reply.body);
    let matched = ctx.header("if-none-match").is_some_and(|h| if_none_match_matches(h, &etag));
    let reply = if matched {
        Reply { status: 304, headers: Vec::new(), body: Vec::new() }
    } else {
        reply
    };
    reply.with_header("etag", etag).with_header("cache-control", cache_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Query;

    fn ctx(inm: Option<&str>) -> Ctx {
        Ctx {
            method: "GET".into(),
            path: "/".into(),
            query: Query::default(),
            headers: inm.map(|v| vec![("if-none-match".to_string(), v.to_string())]).unwrap_or_default(),
            body: crate::body::Body::from_bytes(vec![]),
            request_id: "r".into(),
        }
    }

    #[test]
    fn tags_change_with_the_body() {
        assert_ne!(etag_for(b"a"), etag_for(b"b"));
        assert_eq!(etag_for(b"a"), etag_for(b"a"));
    }

    #[test]
    fn matching_tag_gives_304_without_body() {
        let tag = etag_for(b"{}");
        let r = cacheable(&ctx(Some(&format!("\"x\", W/{tag}"))), Reply::bytes(200, "application/json", b"{}".to_vec()), "public, max-age=30");
        assert_eq!(r.status, 304);
        assert!(r.body.is_empty());
        assert!(r.headers.iter().any(|(k, v)| k == "etag" && *v == tag));
        let r = cacheable(&ctx(Some("\"other\"")), Reply::bytes(200, "application/json", b"{}".to_vec()), "no-cache");
        assert_eq!(r.status, 200);
        let r = cacheable(&ctx(None), Reply::bytes(200, "application/json", b"{}".to_vec()), "no-cache");
        assert!(r.headers.iter().any(|(k, v)| k == "cache-control" && v == "no-cache"));
    }
}
