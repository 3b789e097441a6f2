//! Property tests of the parsers every request goes through before a
//! handler sees it: the query string, JSON bodies, the shared-secret and
//! bearer headers, `Idempotency-Key`, `X-Request-Id`, `If-None-Match` and
//! the access token itself. Whatever a client sends, each gives a value or
//! a clean 4xx — never a panic, which in a component is a trap and a 500.

use crate::auth::{secrets_match, Verifier};
use crate::conditional::if_none_match_matches;
use crate::query::{Query, MAX_PARAMETERS, MAX_QUERY_BYTES};
use crate::request::{idempotency_key, parse_json_body, Ctx};
use crate::request_id::accept_incoming;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::Value;


/// Text a client could put in a query string: bytes that matter to the
/// decoder (`%`, `+`, `&`, `=`), stray percent escapes, any Unicode.
fn query_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[a-z=&%+0-9A-F;#]{0,64}",
        vec(prop_oneof![Just("%".to_string()), Just("%zz".to_string()), Just("%C3".to_string()), "[a-z]{1,3}=[^&]{0,5}", Just("&".to_string())], 0..40)
            .prop_map(|parts| parts.concat()),
    ]
}

fn encode(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn ctx_with(headers: &[(&str, &str)]) -> Ctx {
    Ctx {
        method: "POST".into(),
        path: "/".into(),
        query: Query::default(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: crate::body::Body::from_bytes(Vec::new()),
        request_id: "t".into(),
    }
}

proptest! {
    #[test]
    fn any_query_string_parses_or_is_a_400(raw in query_text()) {
        match Query::parse(&raw) {
            Ok(q) => {
                // Whatever parsed answers every typed accessor without panicking.
                for name in ["page", "limit", "q", "a", "sort"] {
                    let _ = q.int(name, 1, 100);
                    let _ = q.bool(name);
                    let _ = q.text(name, 100);
                    let _ = q.one_of(name, &["name", "newest"]);
                }
            }
            Err(e) => prop_assert_eq!(e.status, 400),
        }
    }

    #[test]
    fn distinct_parameters_round_trip(map in btree_map("[a-zA-Z_][a-zA-Z0-9_.\\[\\]]{0,8}", "[^\u{0}]{0,12}", 0..MAX_PARAMETERS)) {
        let pairs: Vec<(String, String)> = map.into_iter().collect();
        let q = Query::parse(&encode(&pairs)).unwrap();
        for (k, v) in &pairs {
            let expected = Some(v.as_str()).filter(|v| !v.trim().is_empty());
            prop_assert_eq!(q.get(k), expected);
        }
    }

    #[test]
    fn a_repeated_parameter_is_refused(name in "[a-z]{1,8}", a in "[a-z0-9]{0,5}", b in "[a-z0-9]{0,5}", before in 0usize..4) {
        let mut pairs: Vec<(String, String)> = (0..before).map(|i| (format!("other{i}"), "x".to_string())).collect();
        pairs.push((name.clone(), a));
        pairs.push((name.clone(), b));
        let e = Query::parse(&encode(&pairs)).unwrap_err();
        prop_assert_eq!(e.status, 400);
        prop_assert!(e.message.contains(&name));
    }

    #[test]
    fn the_limits_hold(extra in 1usize..20, long in (MAX_QUERY_BYTES + 1)..(MAX_QUERY_BYTES * 2)) {
        let many: Vec<(String, String)> = (0..MAX_PARAMETERS + extra).map(|i| (format!("k{i}"), "v".to_string())).collect();
        let too_many = Query::parse(&encode(&many)).unwrap_err();
        prop_assert_eq!(too_many.code.as_ref(), "too_many_parameters");
        let too_long = Query::parse(&"a".repeat(long)).unwrap_err();
        prop_assert_eq!(too_long.code.as_ref(), "query_too_long");
    }

    #[test]
    fn any_body_is_a_value_or_a_4xx(body in prop_oneof![vec(any::<u8>(), 0..200), ".{0,100}".prop_map(String::into_bytes), json_text().prop_map(String::into_bytes)],
                                     content_type in proptest::option::of(prop_oneof![Just("application/json".to_string()), Just("application/merge-patch+json; charset=utf-8".to_string()), ".{0,30}"]),
                                     limit in 0usize..256) {
        for result in [
            parse_json_body::<Value>(content_type.as_deref(), &body, limit).map(|_| ()),
            parse_json_body::<Item>(content_type.as_deref(), &body, limit).map(|_| ()),
        ] {
            if let Err(e) = result {
                prop_assert!((400..500).contains(&e.status), "{} {}", e.status, e.message);
                if body.len() > limit {
                    prop_assert_eq!(e.status, 413);
                }
            }
        }
    }

    #[test]
    fn a_valid_body_parses_whole_unless_it_holds_a_nul(name in prop_oneof![".{0,20}", "[a\\\\u0\u{0}]{0,12}"], quantity in any::<i64>()) {
        let body = serde_json::to_vec(&serde_json::json!({ "name": name, "quantity": quantity })).unwrap();
        let parsed = parse_json_body::<Item>(Some("application/json"), &body, 1 << 16);
        if name.contains('\0') {
            prop_assert_eq!(parsed.unwrap_err().status, 400);
        } else {
            prop_assert_eq!(parsed.unwrap(), Item { name, quantity });
        }
    }

    #[test]
    fn shared_secrets_match_only_themselves(secret in vec(any::<u8>(), 1..40), tail in vec(any::<u8>(), 1..600), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        prop_assert!(secrets_match(&secret, &secret));
        let mut longer = secret.clone();
        longer.extend_from_slice(&tail);
        prop_assert!(!secrets_match(&longer, &secret), "a longer value");
        prop_assert!(!secrets_match(&secret[..secret.len() - 1], &secret), "a prefix");
        let mut changed = secret.clone();
        changed[at.index(secret.len())] ^= flip;
        prop_assert!(!secrets_match(&changed, &secret), "one byte changed");
    }

    #[test]
    fn any_path_decodes_without_a_nul(raw in prop_oneof![".{0,60}", "(/([a-z0-9%+]|%[0-9a-fA-F]{2}){0,8}){1,4}"]) {
        let decoded = crate::request::decode_path(&raw);
        prop_assert!(!decoded.contains('\0') || raw.contains('\0'));
        if !raw.contains('%') {
            prop_assert_eq!(decoded, raw);
        }
    }

    #[test]
    fn header_parsers_never_panic(value in ".{0,300}") {
        let ctx = ctx_with(&[("idempotency-key", &value), ("authorization", &value)]);
        match idempotency_key(&ctx) {
            Ok(Some(k)) => prop_assert!(!k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b))),
            Ok(None) => prop_assert!(false, "the header was sent"),
            Err(e) => prop_assert_eq!(e.status, 400),
        }
        if let Err(e) = crate::auth::bearer_token(&ctx) {
            prop_assert_eq!(e.status, 401);
        }
        if let Some(id) = accept_incoming(Some(&value)) {
            prop_assert!(id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)));
        }
        let _ = if_none_match_matches(&value, "\"0123456789abcdef\"");
        let _ = crate::cors::CorsPolicy::parse(&value).allow_origin(Some(&value));
    }
}

proptest! {
    #[test]
    fn any_bearer_token_is_a_caller_or_a_401(token in prop_oneof![".{0,200}", jwt_like()]) {
        let verifier = verifier();
        if let Err(e) = verifier.verify(&token) {
            prop_assert_eq!(e.status, 401);
        }
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Item {
    name: String,
    quantity: i64,
}

/// JSON-ish text: real JSON documents, deep nesting, huge numbers.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9]{1,40}(\\.[0-9]{1,5})?(e[+-]?[0-9]{1,4})?",
        ".{0,10}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    let doc = leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            vec(("[a-z_]{1,8}", inner), 0..4)
                .prop_map(|v| format!("{{{}}}", v.iter().map(|(k, x)| format!("\"{k}\":{x}")).collect::<Vec<_>>().join(","))),
        ]
    });
    prop_oneof![doc, (1usize..200).prop_map(|d| "[".repeat(d * 10) + "]".repeat(d * 10).as_str())]
}

/// Three dot-separated base64url parts, the shape of a JWT.
fn jwt_like() -> impl Strategy<Value = String> {
    use base64::Engine;
    let part = prop_oneof!["[A-Za-z0-9_-]{0,60}", ".{0,40}".prop_map(|s| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s))];
    let header = prop_oneof![
        Just(r#"{"alg":"EdDSA","typ":"JWT"}"#.to_string()),
        Just(r#"{"alg":"none"}"#.to_string()),
        Just(r#"{"alg":"HS256"}"#.to_string()),
        ".{0,30}",
    ]
    .prop_map(|h| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h));
    (header, part.clone(), part).prop_map(|(h, p, s)| format!("{h}.{p}.{s}"))
}

fn verifier() -> Verifier {
    use base64::Engine;
    use jwt_simple::prelude::*;
    let kp = Ed25519KeyPair::generate();
    Verifier::new(&base64::engine::general_purpose::STANDARD.encode(kp.public_key().to_der()), "shop", "shop-api").unwrap()
}
