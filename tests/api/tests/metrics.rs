//! `GET /metrics`: Prometheus' text format, parsed by a real parser (the
//! pinned `prometheus-client` of deploy/requirements.txt, in a venv this
//! test makes), behind the metrics secret, with figures that follow what
//! the shop does: orders by status, paid revenue, flagged orders, stock-outs,
//! live holds, failed emails, refused webhooks and sweep runs; a service
//! whose database is down is reported as such, the others still answer.

use api_tests::{event, now, stripe_signature, unique_email, TestApp, METRICS_SECRET, STRONG_PASSWORD, SWEEP_SECRET};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A Python with the pinned prometheus-client: `SHOP_METRICS_PYTHON`, or a
/// venv made once under target/ (`python3 -m venv` + pip, from PyPI).
fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(p) = std::env::var("SHOP_METRICS_PYTHON").ok().filter(|p| !p.trim().is_empty()) {
            return PathBuf::from(p);
        }
        let root = api_tests::workspace_root();
        let pin = std::fs::read_to_string(root.join("deploy/requirements.txt"))
            .expect("deploy/requirements.txt")
            .lines()
            .find(|l| l.starts_with("prometheus-client=="))
            .expect("deploy/requirements.txt pins prometheus-client")
            .to_string();
        let venv = root.join("target/test-venvs/prometheus-client");
        let python = venv.join("bin/python");
        let has_pin = |python: &PathBuf| {
            let version = pin.trim_start_matches("prometheus-client==");
            Command::new(python)
                .args(["-c", &format!("import importlib.metadata as m, sys; sys.exit(m.version('prometheus-client') != '{version}')")])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has_pin(&python) {
            let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 is needed for the metrics parser test");
            assert!(made.success(), "python3 -m venv {venv:?} failed");
            let pip = Command::new(venv.join("bin/pip")).args(["install", "-q", &pin]).status().expect("pip");
            assert!(pip.success(), "pip install {pin} failed (PyPI reachable?)");
            assert!(has_pin(&python), "{pin} is not importable after installing it");
        }
        python
    })
}

/// The exposition parsed by prometheus_client's text parser: family name ->
/// {type, samples: [{name, labels, value}]}. Panics with the parser's error.
fn parse(body: &str) -> BTreeMap<String, Value> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type, "help": f.documentation,
                   "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
print(json.dumps(out))
"#;
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "prometheus_client refused the exposition: {}\n{body}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<BTreeMap<String, Value>>(&out.stdout).expect("parser output")
}

struct Scrape(BTreeMap<String, Value>);

impl Scrape {
    /// The value of the sample `name` with exactly these labels.
    fn value(&self, family: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        self.0.get(family)?["samples"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == name && s["labels"].as_object() == Some(&want))
            .and_then(|s| s["value"].as_f64())
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        assert_eq!(self.0.get(name).map(|f| f["type"].clone()), Some(json!("gauge")), "{name} is a gauge: {:?}", self.0.keys());
        self.value(name, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:?}", self.0.get(name)))
    }

    /// A counter `<family>_total` (the parser names the family without `_total`).
    fn counter(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        assert_eq!(self.0.get(family).map(|f| f["type"].clone()), Some(json!("counter")), "{family} is a counter: {:?}", self.0.keys());
        self.value(family, &format!("{family}_total"), labels).unwrap_or_else(|| panic!("no sample {family}_total{labels:?}"))
    }
}

fn scrape(app: &TestApp) -> Scrape {
    let auth = format!("Bearer {METRICS_SECRET}");
    let r = app.request("GET", "/metrics", &[("authorization", &auth)], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    Scrape(parse(&r.body))
}

#[test]
fn metrics_need_the_metrics_secret() {
    let app = TestApp::get();
    let missing = app.get_path("/metrics").assert_error(401, "unauthorized");
    assert!(missing["error"]["message"].as_str().unwrap().contains("Authorization"));
    let wrong = app.request("GET", "/metrics", &[("authorization", "Bearer not-the-secret")], None);
    wrong.assert_error(401, "unauthorized");
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    // The sweep secret is not the metrics secret, and an admin's token is not either.
    let sweep = format!("Bearer {SWEEP_SECRET}");
    app.request("GET", "/metrics", &[("authorization", &sweep)], None).assert_error(401, "unauthorized");
    let admin = format!("Bearer {}", app.admin().access_token);
    app.request("GET", "/metrics", &[("authorization", &admin)], None).assert_error(401, "unauthorized");
    let post = app.request("POST", "/metrics", &[("authorization", &format!("Bearer {METRICS_SECRET}"))], None);
    post.assert_error(405, "method_not_allowed");
    assert_eq!(post.header("allow"), Some("GET"));
}

#[test]
fn every_family_parses_with_help_and_type() {
    let app = TestApp::get();
    let s = scrape(&app);
    for source in ["orders", "catalog", "notifications", "cart"] {
        assert_eq!(s.gauge("shop_metrics_source_up", &[("source", source)]), 1.0, "{source} answered");
    }
    for status in ["pending_payment", "paid", "processing", "shipped", "delivered", "cancelled", "expired", "refunded"] {
        s.gauge("shop_orders", &[("status", status)]);
    }
    for gauge in ["shop_orders_flagged", "shop_products_out_of_stock", "shop_reservations_live"] {
        s.gauge(gauge, &[]);
    }
    for channel in ["email", "sms"] {
        s.gauge("shop_deliveries_pending", &[("channel", channel)]);
        s.gauge("shop_deliveries_failed", &[("channel", channel)]);
    }
    for outbox in ["users", "orders"] {
        assert!(s.gauge("shop_outbox_oldest_undelivered_age_seconds", &[("outbox", outbox)]) >= 0.0);
    }
    s.counter("shop_stripe_webhook_signature_failures", &[]);
    for change in ["stock", "restock"] {
        s.gauge("shop_catalog_changes_owed", &[("change", change)]);
        assert!(s.gauge("shop_catalog_changes_owed_oldest_age_seconds", &[("change", change)]) >= 0.0);
    }
    for sweep in ["orders", "notifications", "cart"] {
        s.counter("shop_sweep_runs", &[("sweep", sweep)]);
    }
    for (name, family) in &s.0 {
        assert!(family["help"].as_str().is_some_and(|h| !h.is_empty()), "{name} has help text");
    }
}

/// One test, so the deltas are this test's own.
#[test]
fn figures_follow_what_the_shop_does() {
    let app = TestApp::get();
    let admin = app.admin();
    if std::env::var("SHOP_BASE_URL").is_ok_and(|u| !u.trim().is_empty()) {
        // A long-lived app: orders earlier test binaries left pending would
        // lapse (and leave the gauges) in the middle of this test. Let them
        // lapse first, and expire them, so the deltas are this test's own.
        let ttl: u64 = api_tests::UNPAID_ORDER_TTL_SECS.parse().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(ttl + 1));
        loop {
            let r = app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", api_tests::SWEEP_SECRET)], None);
            assert_eq!(r.status, 200, "{}", r.body);
            if r.json()["expired"] == 0 {
                break;
            }
        }
    }
    let before = scrape(&app);
    let orders = |s: &Scrape, status: &str| s.gauge("shop_orders", &[("status", status)]);
    let usd = |s: &Scrape| s.value("shop_paid_revenue_minor", "shop_paid_revenue_minor", &[("currency", "USD")]).unwrap_or(0.0);

    // A product with no stock is out of stock; two orders hold stock.
    app.new_product(&admin, "Metrics Sold Out", 0);
    let (user, _) = app.customer_with_cart(10, 1250, 2);
    let paid_id = app.place_order(&user, None, None).json()["id"].as_str().unwrap().to_string();
    let (other, _) = app.customer_with_cart(10, 700, 1);
    let flagged_id = app.place_order(&other, None, None).json()["id"].as_str().unwrap().to_string();
    let placed = scrape(&app);
    assert_eq!(placed.gauge("shop_products_out_of_stock", &[]) - before.gauge("shop_products_out_of_stock", &[]), 1.0);
    assert_eq!(orders(&placed, "pending_payment") - orders(&before, "pending_payment"), 2.0);
    assert_eq!(placed.gauge("shop_reservations_live", &[]) - before.gauge("shop_reservations_live", &[]), 2.0);

    // One is paid (revenue 2 x 12.50 USD), the other paid the wrong amount (flagged, unpaid).
    let session = app.start_checkout(&user, &paid_id);
    let mut paid = app.stripe.session(&session);
    paid["status"] = json!("complete");
    paid["payment_status"] = json!("paid");
    assert_eq!(app.stripe_sends(&event(&format!("evt_{paid_id}_metrics"), "checkout.session.completed", paid)).status, 200);
    let session = app.start_checkout(&other, &flagged_id);
    let mut short = app.stripe.session(&session);
    short["status"] = json!("complete");
    short["payment_status"] = json!("paid");
    short["amount_total"] = json!(1);
    assert_eq!(app.stripe_sends(&event(&format!("evt_{flagged_id}_metrics"), "checkout.session.completed", short)).status, 200);
    // Two forged webhooks are refused and counted.
    let forged = event("evt_forged_metrics", "checkout.session.completed", json!({}));
    app.stripe_sends_signed(&forged, &stripe_signature(&forged.to_string(), "whsec_wrong", now())).assert_error(400, "invalid_signature");
    app.request_raw("POST", "/api/webhooks/stripe", &[], forged.to_string().into_bytes()).assert_error(400, "invalid_signature");
    let after = scrape(&app);
    assert_eq!(orders(&after, "paid") - orders(&before, "paid"), 1.0);
    assert_eq!(orders(&after, "pending_payment") - orders(&before, "pending_payment"), 1.0);
    assert_eq!(usd(&after) - usd(&before), 2500.0);
    assert_eq!(after.gauge("shop_orders_flagged", &[]) - before.gauge("shop_orders_flagged", &[]), 1.0);
    assert_eq!(after.gauge("shop_reservations_live", &[]) - before.gauge("shop_reservations_live", &[]), 1.0, "the paid order's hold is committed");
    assert_eq!(
        after.counter("shop_stripe_webhook_signature_failures", &[]) - before.counter("shop_stripe_webhook_signature_failures", &[]),
        2.0
    );

    // An email Resend refuses for good is a failed delivery.
    let email = unique_email("metrics-refused");
    app.resend.script(&email, &[(422, None)]);
    assert_eq!(app.register(json!({ "email": email, "password": STRONG_PASSWORD, "first_name": "M", "last_name": "R" })).status, 201);
    let mut failed = 0.0;
    for _ in 0..50 {
        app.deliver_emails();
        failed = scrape(&app).gauge("shop_deliveries_failed", &[("channel", "email")]) - before.gauge("shop_deliveries_failed", &[("channel", "email")]);
        if failed >= 1.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(failed, 1.0);

    // Each sweep run is counted, and its age starts again near zero.
    let runs = |s: &Scrape, sweep: &str| s.counter("shop_sweep_runs", &[("sweep", sweep)]);
    let swept_before = scrape(&app);
    assert_eq!(app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None).status, 200);
    assert_eq!(app.request("POST", "/api/cart/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None).status, 200);
    app.deliver_emails();
    let swept = scrape(&app);
    assert_eq!(runs(&swept, "orders") - runs(&swept_before, "orders"), 1.0);
    assert!(runs(&swept, "notifications") - runs(&swept_before, "notifications") >= 1.0);
    assert!(runs(&swept, "cart") - runs(&swept_before, "cart") >= 1.0, "the guest-cart sweep too");
    for sweep in ["orders", "notifications", "cart"] {
        let age = swept.gauge("shop_sweep_last_run_age_seconds", &[("sweep", sweep)]);
        assert!((0.0..=5.0).contains(&age), "{sweep} sweep ran {age} s ago");
    }
    // A refused sweep is not a run.
    assert_eq!(app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", "wrong")], None).status, 401);
    assert_eq!(runs(&scrape(&app), "orders"), runs(&swept, "orders"));
}

#[test]
fn a_service_whose_database_is_down_is_reported_and_the_others_still_answer() {
    if std::env::var("SHOP_BASE_URL").is_ok_and(|u| !u.trim().is_empty()) {
        eprintln!("not applicable against SHOP_BASE_URL: it needs its own host with a database that cannot be reached");
        return;
    }
    // The checkout database on a Postgres nobody listens on (port 9); the
    // rest embedded. The notifications figures read the orders outbox, so
    // they are missing too; the catalog's still arrive.
    let keys = jwt_simple::prelude::Ed25519KeyPair::generate();
    let host = api_tests::launch_host_with(
        &keys,
        &[("orders_database_url", "postgres://shop@127.0.0.1:9/orders"), ("postgres_host", "127.0.0.1:9")],
        &api_tests::workspace_root().join("runtime-config.toml"),
    );
    let app = TestApp::for_host(&host, keys);
    let s = scrape(&app);
    assert_eq!(s.gauge("shop_metrics_source_up", &[("source", "orders")]), 0.0);
    assert_eq!(s.gauge("shop_metrics_source_up", &[("source", "notifications")]), 0.0);
    assert_eq!(s.gauge("shop_metrics_source_up", &[("source", "catalog")]), 1.0);
    assert!(!s.0.contains_key("shop_orders") && !s.0.contains_key("shop_deliveries_pending"), "no figures for a service that did not answer: {:?}", s.0.keys());
    assert_eq!(s.gauge("shop_products_out_of_stock", &[]), 5.0, "the demo catalog's sold-out products");
}
