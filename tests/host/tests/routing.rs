//! Routing, Spin's request headers and per-request instances, against the
//! fixture app (see tests/fixtures/spin.toml).

mod common;

use common::start;

fn probe_name(reply: &common::Reply) -> String {
    reply.ok()["probe"].as_str().unwrap().to_string()
}

#[test]
fn most_specific_route_wins() {
    let app = start(&[]);
    // Exact beats wildcard.
    assert_eq!(probe_name(&app.get("/probe/exact", &[])), "exact");
    // Below an exact route, the wildcard applies again.
    assert_eq!(probe_name(&app.get("/probe/exact/more", &[])), "probe");
    // Longer wildcard prefix beats shorter.
    assert_eq!(probe_name(&app.get("/probe/deep/1/2", &[])), "deep");
    assert_eq!(probe_name(&app.get("/probe/deep", &[])), "deep");
    assert_eq!(probe_name(&app.get("/probe/other", &[])), "probe");
}

#[test]
fn wildcard_matches_its_prefix_and_below_only() {
    let app = start(&[]);
    assert_eq!(probe_name(&app.get("/probe", &[])), "probe");
    assert_eq!(probe_name(&app.get("/probe/a/b/c?x=1", &[])), "probe");
    assert_eq!(app.get("/probeX", &[]).status, 404);
}

#[test]
fn unmatched_path_is_404() {
    let app = start(&[]);
    let reply = app.get("/no/such/route", &[]);
    assert_eq!(reply.status, 404);
    assert_eq!(app.get("/", &[]).status, 404);
}

#[test]
fn private_component_is_not_reachable_from_outside() {
    let app = start(&[]);
    // `internal` has `route = { private = true }`: no path reaches it.
    for path in ["/internal", "/internal/x", "/"] {
        let reply = app.get(path, &[]);
        assert!(
            reply.status == 404,
            "{path} reached something: {}",
            reply.body
        );
    }
}

#[test]
fn parameter_segments_are_exposed_as_headers() {
    let app = start(&[]);
    let body = app.get("/items/sku-42/detail", &[]).ok();
    assert_eq!(body["probe"], "param");
    assert_eq!(body["headers"]["spin-path-match-id"], "sku-42");
    assert_eq!(body["headers"]["spin-matched-route"], "/items/:id/detail");
    // A parameter matches exactly one non-empty segment.
    assert_eq!(app.get("/items/detail", &[]).status, 404);
    assert_eq!(app.get("/items/a/b/detail", &[]).status, 404);
}

#[test]
fn spin_headers_for_a_wildcard_route() {
    let app = start(&[]);
    let body = app.get("/probe/a/b?q=1", &[]).ok();
    let h = &body["headers"];
    let base = app.host.base_url();
    assert_eq!(h["spin-full-url"], format!("{base}/probe/a/b?q=1"));
    assert_eq!(h["spin-path-info"], "/a/b");
    assert_eq!(h["spin-matched-route"], "/probe/...");
    assert_eq!(h["spin-raw-component-route"], "/probe/...");
    assert_eq!(h["spin-component-route"], "/probe");
    assert_eq!(h["spin-base-path"], "/");
    let client = h["spin-client-addr"].as_str().unwrap();
    assert!(client.starts_with("127.0.0.1:"), "{client}");
    assert_ne!(client, "127.0.0.1:0");
}

#[test]
fn spin_headers_for_an_exact_route_and_client_spoofing() {
    let app = start(&[]);
    // As in Spin, a client's own `spin-*` field is passed on and Spin's
    // comes after it, so the last one is Spin's: what spin-sdk's `Request`
    // keeps (a map, the last field of a name winning), and what a component
    // reading every field must take (the users service does, for
    // `spin-client-addr`; the API suite checks it).
    let body = app.get("/probe/exact", &[("spin-path-info", "/evil"), ("spin-client-addr", "6.6.6.6:1")]).ok();
    let h = &body["headers"];
    assert!(h["spin-client-addr"].as_str().unwrap().starts_with("127.0.0.1:"), "{h}");
    assert_eq!(h["spin-path-info"], "");
    assert_eq!(h["spin-matched-route"], "/probe/exact");
    assert_eq!(h["spin-component-route"], "/probe/exact");
    assert_eq!(h["spin-raw-component-route"], "/probe/exact");
}

#[test]
fn every_request_gets_a_fresh_instance() {
    let app = start(&[]);
    for _ in 0..5 {
        let body = app.get("/probe/count", &[("x-action", "counter")]).ok();
        assert_eq!(body["count"], 1, "a guest instance was reused");
    }
}
