//! The shop for the browser tests (`tests/browser`): the test host running
//! the real components from `spin.toml` on a fresh state directory, with the
//! fake Stripe (whose hosted checkout page pays and sends the signed
//! webhook) and the fake Resend, and the bootstrap admin ready to sign in.
//!
//! Prints one JSON line, `{"base_url", "control_url", "admin_email",
//! "admin_password"}`, then serves until its standard input closes. The
//! control URL answers what a browser cannot do itself:
//! `GET /expired-token?user_id=..&role=..` (an access token signed with the
//! app's key that expired a minute ago), `GET /emails?to=..` (due emails are
//! delivered first, then the ones the fake Resend received for that
//! address, as JSON).
//!
//! `cargo run -p api-tests --bin storefront-host [-- --without-stripe]`
//! (build the components first: `scripts/build-components.sh`).
//! `--without-stripe` runs the shop with no Stripe key, as a shop that has
//! not set up payments yet.

use api_tests::{workspace_root, FakeStripe, TestApp, ADMIN_EMAIL, STRIPE_WEBHOOK_SECRET, STRONG_PASSWORD, TEST_VARIABLES};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::json;
use shop_test_host::{HostOptions, RunningHost};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

fn main() {
    let keys = Ed25519KeyPair::generate();
    let stripe = FakeStripe::start("127.0.0.1:0");
    let resend = api_tests::fake_resend::FakeResend::start("127.0.0.1:0");
    // Image uploads and SMS work too (the schemathesis run exercises every
    // operation, and a feature left unconfigured answers 503).
    let storage = api_tests::fake_object_storage::FakeObjectStorage::start("127.0.0.1:0");
    let twilio = api_tests::fake_twilio::FakeTwilio::start("127.0.0.1:0");
    // The success and cancel URLs name the app's own address, so pick the
    // port before starting.
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let base = format!("http://127.0.0.1:{port}");
    let mut variables: HashMap<String, String> = TEST_VARIABLES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let without_stripe = std::env::args().any(|a| a == "--without-stripe");
    for (k, v) in [
        ("jwt_private_key", STANDARD.encode(keys.to_der())),
        ("jwt_public_key", STANDARD.encode(keys.public_key().to_der())),
        ("stripe_api_base", stripe.url.clone()),
        ("resend_api_base", resend.url.clone()),
        ("checkout_success_url", format!("{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}")),
        ("checkout_cancel_url", format!("{base}/checkout/cancelled")),
        ("storefront_url", base.clone()),
        // The API suite's short lifetimes (for expiry tests) would end a
        // browser session's cart and order midway.
        ("guest_cart_idle_ttl", "1d".to_string()),
        ("unpaid_order_ttl_secs", "3600".to_string()),
        ("password_reset_ttl_secs", "3600".to_string()),
    ] {
        variables.insert(k.to_string(), v);
    }
    for (k, v) in api_tests::object_storage_variables(&storage).into_iter().chain(api_tests::twilio_variables(&twilio)) {
        variables.insert(k.to_string(), v);
    }
    if without_stripe {
        variables.insert("stripe_secret_key".into(), String::new());
        variables.insert("stripe_webhook_secret".into(), String::new());
    }
    let state_dir = std::env::temp_dir().join(format!("shop-storefront-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let root = workspace_root();
    let host = RunningHost::start(HostOptions {
        manifest: root.join("spin.toml"),
        runtime_config: Some(root.join("runtime-config.toml")),
        state_dir: state_dir.clone(),
        variables,
        listen: format!("127.0.0.1:{port}").parse().expect("addr"),
    })
    .unwrap_or_else(|e| panic!("could not start the test host: {e:#}\nBuild the components first: scripts/build-components.sh"));
    stripe.deliver_webhooks_to(&host.base_url(), STRIPE_WEBHOOK_SECRET);

    let mut app = TestApp::connect(host.base_url(), keys);
    app.stripe = stripe;
    app.resend = resend;
    app.admin(); // registered and verified: an admin from now on
    let app = std::sync::Arc::new(app);

    let control = TcpListener::bind("127.0.0.1:0").expect("control port");
    let control_url = format!("http://{}", control.local_addr().expect("addr"));
    let served = app.clone();
    std::thread::spawn(move || {
        for stream in control.incoming().flatten() {
            let app = served.clone();
            std::thread::spawn(move || answer(stream, &app));
        }
    });
    println!(
        "{}",
        json!({
            "base_url": host.base_url(), "control_url": control_url, "admin_email": ADMIN_EMAIL, "admin_password": STRONG_PASSWORD,
            "sweep_secret": api_tests::SWEEP_SECRET, "metrics_secret": api_tests::METRICS_SECRET,
        })
    );
    let _ = std::io::stdout().flush();
    // Serve until the runner closes our standard input (or kills us).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(host);
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// One control request: a request line, headers ignored, a JSON answer.
fn answer(mut stream: std::net::TcpStream, app: &TestApp) {
    let mut line = String::new();
    {
        let mut reader = BufReader::new(&stream);
        if reader.read_line(&mut line).is_err() {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                break;
            }
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: HashMap<String, String> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%40", "@").replace("%2B", "+")))
        .collect();
    let param = |k: &str| params.get(k).cloned().unwrap_or_default();
    let (status, body) = match path {
        "/expired-token" => {
            let role = if param("role").is_empty() { "customer".to_string() } else { param("role") };
            let token = app.forge_token(&param("user_id"), &role, "shop-api", "shop", -60);
            (200, json!({ "token": token }))
        }
        "/emails" => {
            app.deliver_emails();
            let to = param("to");
            let emails: Vec<_> = app.resend.to(&to).iter().map(|c| json!({ "key": c.idempotency_key(), "body": c.body })).collect();
            (200, json!({ "emails": emails }))
        }
        _ => (404, json!({ "error": "unknown control path" })),
    };
    let text = body.to_string();
    let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}", text.len());
}
