//! Outbound HTTP: `allowed_outbound_hosts` (incl. templates), in-process
//! `*.spin.internal` and `self` requests, body draining, and the guest's
//! `request-options` timeouts on real sends.

mod common;

use common::{start, FakeUpstream};

fn fetch(
    app: &common::TestHost,
    component: &str,
    url: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> common::Reply {
    let mut headers = vec![("x-action", "fetch"), ("x-url", url)];
    headers.extend_from_slice(extra);
    app.post(&format!("/{component}/fetch"), &headers, body)
}

#[test]
fn allowed_host_from_a_variable_template_is_reached_over_the_network() {
    let upstream = FakeUpstream::start();
    // `probe` allows "{{ upstream }}"; the override resolves it to the fake.
    let app = start(&[("upstream", &upstream.base_url())]);
    let reply = fetch(
        &app,
        "probe",
        &format!("{}/v1/charges?x=1", upstream.base_url()),
        &[("x-method", "POST")],
        b"amount=1999",
    );
    let body = reply.ok();
    assert_eq!(body["status"], 200);
    assert_eq!(body["body"], "upstream says hi");
    let seen = upstream.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/charges?x=1");
    assert_eq!(seen[0].body, b"amount=1999");
}

#[test]
fn hosts_not_allowed_are_denied() {
    let upstream = FakeUpstream::start();
    // Default `upstream` is another port: the fake is not allowed.
    let app = start(&[]);
    let error = fetch(
        &app,
        "probe",
        &format!("{}/", upstream.base_url()),
        &[],
        b"",
    )
    .error();
    assert!(error.contains("HttpRequestDenied"), "{error}");
    // `limited` allows nothing at all, not even the internal network.
    let error = fetch(&app, "limited", "http://internal.spin.internal/", &[], b"").error();
    assert!(error.contains("HttpRequestDenied"), "{error}");
    let error = fetch(&app, "probe", "http://example.com/", &[], b"").error();
    assert!(error.contains("HttpRequestDenied"), "{error}");
    assert!(upstream.seen.lock().unwrap().is_empty());
}

#[test]
fn denied_request_with_a_large_body_still_reports_denied() {
    // The hook answers without reading the body; the guest must still be
    // able to write all of it and then see the denial, not a closed stream.
    let app = start(&[]);
    let big = vec![b'x'; 1024 * 1024];
    let error = fetch(
        &app,
        "probe",
        "http://example.com/",
        &[("x-method", "POST")],
        &big,
    )
    .error();
    assert!(error.contains("HttpRequestDenied"), "{error}");
}

#[test]
fn spin_internal_reaches_a_private_component_in_process() {
    let app = start(&[]);
    let reply = fetch(
        &app,
        "probe",
        "http://internal.spin.internal/some/path",
        &[("x-forward-action", "headers")],
        b"",
    );
    let body = reply.ok();
    assert_eq!(body["status"], 200);
    let inner: serde_json::Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["probe"], "internal");
    assert_eq!(inner["headers"]["spin-path-info"], "/some/path");
    assert_eq!(
        inner["headers"]["spin-full-url"],
        "http://internal.spin.internal/some/path"
    );

    // The request body is passed through.
    let reply = fetch(
        &app,
        "probe",
        "http://internal.spin.internal/",
        &[("x-forward-action", "echo"), ("x-method", "POST")],
        b"ping",
    );
    let inner: serde_json::Value =
        serde_json::from_str(reply.ok()["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["body"], "ping");
}

#[test]
fn spin_internal_to_an_unknown_component_fails() {
    let app = start(&[]);
    let error = fetch(&app, "probe", "http://nobody.spin.internal/", &[], b"").error();
    assert!(error.contains("DestinationNotFound"), "{error}");
}

#[test]
fn self_requests_go_through_the_router() {
    let app = start(&[]);
    let body = fetch(
        &app,
        "probe",
        "http://self.alt/probe/exact",
        &[("x-forward-action", "headers")],
        b"",
    )
    .ok();
    let inner: serde_json::Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["probe"], "exact");
    // Private components are not reachable through `self`.
    let body = fetch(&app, "probe", "http://self.alt/internal", &[], b"").ok();
    assert_eq!(body["status"], 404);
}

#[test]
fn https_is_refused_with_a_clear_error() {
    // Allow an https host through the `{{ upstream }}` template, then try it.
    let app = start(&[("upstream", "https://api.stripe.test")]);
    let error = fetch(&app, "probe", "https://api.stripe.test/v1", &[], b"").error();
    assert!(error.contains("plain http only"), "{error}");
}

/// A loopback server that accepts each connection, reads the request head,
/// and answers `200 late` only after `delay`.
fn slow_upstream(delay: std::time::Duration) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                std::thread::sleep(delay);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nlate",
                );
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn first_byte_timeout_from_request_options_is_honoured() {
    let upstream = slow_upstream(std::time::Duration::from_millis(1500));
    let app = start(&[("upstream", &upstream)]);
    // The server answers after 1.5 s; a 100 ms first-byte timeout expires.
    let error = fetch(
        &app,
        "probe",
        &format!("{upstream}/slow"),
        &[("x-first-byte-timeout-ms", "100")],
        b"",
    )
    .error();
    assert!(error.contains("ConnectionReadTimeout"), "{error}");
    // The same raw path with a generous timeout gets the answer.
    let body = fetch(
        &app,
        "probe",
        &format!("{upstream}/slow"),
        &[("x-first-byte-timeout-ms", "30000")],
        b"",
    )
    .ok();
    assert_eq!(body["status"], 200);
    assert_eq!(body["body"], "late");
}
