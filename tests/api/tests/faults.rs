//! Faults from outside the shop (issue #15, item 4): Stripe failing,
//! rate limiting or hanging on each call the shop makes; a service database
//! kept from writers by another session for longer than the app waits for
//! a lock (on SQLite and, with `SHOP_TEST_STORES=postgres`, on Postgres); a
//! webhook whose processing fails part way. Each time the client gets a
//! clear 502/503 in the error envelope, nothing is half written, and the
//! retry after the fault succeeds once. (Resend failing is covered in
//! `notifications.rs`: `rate_limits_are_retried_after_retry_after`,
//! `other_client_errors_fail_for_good`,
//! `delivery_is_tried_right_after_the_change_and_an_outage_does_not_hurt`,
//! `a_hanging_resend_times_out_and_is_retried_later`.)
//!
//! Every test here starts its own host (its own fake Stripe, a short
//! `stripe_timeout_ms`, databases it may lock), so a fault never reaches
//! another test's requests.

use api_tests::fake_resend::FakeResend;
use api_tests::{event, launch_host_and_stores, unique_email, unique_sku, ApiResponse, FakeStripe, ServerStores, Shopper, TestApp, TestUser, METRICS_SECRET, SWEEP_SECRET};
use serde_json::{json, Value};
use shop_store_copy::PgDb;
use shop_test_host::RunningHost;
use std::time::{Duration, Instant};
use storage::native::MemDb;
use storage::{Db, Dialect, LOCK_WAIT};

/// The Stripe timeout of the hosts here; a hang lasts far longer.
const STRIPE_TIMEOUT_MS: u64 = 500;
const HANG_MS: u64 = 4000;

fn against_external_app(test: &str) -> bool {
    let external = std::env::var("SHOP_BASE_URL").is_ok_and(|u| !u.trim().is_empty());
    if external {
        eprintln!("{test}: not applicable against SHOP_BASE_URL (it needs a host of its own)");
    }
    external
}

/// A host of its own, and the servers its databases are on when
/// `SHOP_TEST_STORES=postgres` (stopped after the host: fields drop in order).
struct OwnHost {
    host: RunningHost,
    servers: Option<ServerStores>,
}

impl OwnHost {
    /// A session of the test's own on the service database `label`, beside the app's.
    fn database(&self, label: &str) -> Box<dyn Db> {
        match &self.servers {
            None => {
                let db = MemDb::file(&self.host.sqlite_database_path(label));
                db.0.busy_timeout(Duration::from_secs(30)).unwrap();
                Box::new(db)
            }
            Some(servers) => Box::new(PgDb::connect(&servers.postgres.database_url(label)).expect("connect to the Postgres database")),
        }
    }
}

/// A host of its own, with its own fake Stripe and Resend.
fn own_host() -> (OwnHost, TestApp) {
    own_host_with(&[])
}

/// [`own_host`] with more variables.
fn own_host_with(extra: &[(&str, &str)]) -> (OwnHost, TestApp) {
    let timeout = STRIPE_TIMEOUT_MS.to_string();
    let mut variables = vec![("stripe_timeout_ms", timeout.as_str())];
    variables.extend_from_slice(extra);
    let (host, servers, app) = api_tests::own_app_and_stores(&variables);
    (OwnHost { host, servers }, app)
}

fn address() -> Value {
    json!({ "shipping_address": { "name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "us" } })
}

fn place(app: &TestApp, user: &TestUser) -> String {
    let r = app.place_order(user, Some(&unique_email("key")), Some(address()));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

/// (on hand, reserved, available) of a product.
fn stock(app: &TestApp, product: &str) -> (i64, i64, i64) {
    let admin = app.admin();
    let v = app.send_as(&admin.access_token, "GET", &format!("/api/products/{product}"), None).json();
    (v["on_hand"].as_i64().unwrap(), v["reserved"].as_i64().unwrap(), v["available"].as_i64().unwrap())
}

fn payment_of(app: &TestApp, user: &TestUser, order: &str) -> Value {
    let r = app.send_as(&user.access_token, "GET", &format!("/api/payments/order/{order}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn history(app: &TestApp, user: &TestUser, order: &str) -> Vec<Value> {
    let r = app.send_as(&user.access_token, "GET", &format!("/api/orders/{order}/history"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["history"].as_array().cloned().unwrap_or_default()
}

/// Everything a fault must leave as it was: the order (status, money,
/// flags, history), its payment (the summary's objects and status, every
/// ledger row) and the product's stock. A payment summary row with no
/// session or intent yet (`awaiting_payment`) is the same as none: the
/// session request writes it, with the session's expiry, before it calls
/// Stripe (so a retry sends Stripe the same parameters).
fn state(app: &TestApp, user: &TestUser, order: &str, product: &str) -> Value {
    let o = app.order(user, order);
    let p = payment_of(app, user, order);
    let none_yet = json!({ "status": "awaiting_payment", "checkout_session": null, "payment_intent": null, "amount_refunded": 0 });
    let summary = if p["payment"].is_null() { &none_yet } else { &p["payment"] };
    json!({
        "order": { "status": o["status"], "total": o["total"], "refunded": o["refunded"], "flags": o["flags"] },
        "history": history(app, user, order).len(),
        "payment": { "status": summary["status"], "checkout_session": summary["checkout_session"], "payment_intent": summary["payment_intent"], "amount_refunded": summary["amount_refunded"] },
        "objects": p["objects"],
        "automatic_refunds": p["automatic_refunds"],
        "stock": format!("{:?}", stock(app, product)),
    })
}

/// Each Stripe call the shop makes for a client.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    /// `POST /api/payments/checkout-session` → `POST /v1/checkout/sessions`.
    CreateSession,
    /// `POST /api/payments/create-intent` → `POST /v1/payment_intents`.
    CreateIntent,
    /// `POST /api/payments/refund` → `POST /v1/refunds`.
    Refund,
    /// The success page's `GET /api/payments/checkout-session/{id}` →
    /// `GET /v1/checkout/sessions/{id}`.
    RetrieveSession,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// 500 from Stripe's endpoint, which made nothing; Stripe keeps it
    /// under the request's Idempotency-Key and replays it.
    ServerError,
    /// 500 from Stripe's endpoint after it made the object (a session, an
    /// intent, a refund); kept and replayed the same way.
    CreatedThenServerError,
    /// 429 with `Retry-After`.
    RateLimited,
    /// Stripe runs the request but answers after the shop's timeout.
    Hanging,
}

/// One order set up for a call: who asks, what to ask, which Stripe calls
/// are this call's (the text they mention and their path).
struct Case {
    user: TestUser,
    order: String,
    product: String,
    /// The payment's intent (refunds).
    intent: Option<String>,
    /// Text every Stripe call of this case mentions (the fault's target).
    target: String,
    stripe_path: String,
}

fn set_up(app: &TestApp, call: Call) -> Case {
    let (user, product) = app.customer_with_cart(5, 1000, 1);
    let order = place(app, &user);
    let mut case = Case { user, order: order.clone(), product, intent: None, target: order.clone(), stripe_path: String::new() };
    match call {
        Call::CreateSession => case.stripe_path = "/v1/checkout/sessions".into(),
        Call::CreateIntent => case.stripe_path = "/v1/payment_intents".into(),
        Call::Refund => {
            let session = app.start_checkout(&case.user, &order);
            let paid = app.stripe.pay_session(&session);
            case.intent = paid["payment_intent"].as_str().map(str::to_string);
            let r = app.stripe_sends(&event(&format!("evt_{order}_paid"), "checkout.session.completed", paid));
            assert_eq!(r.status, 200, "{}", r.body);
            case.stripe_path = "/v1/refunds".into();
        }
        Call::RetrieveSession => {
            let session = app.start_checkout(&case.user, &order);
            app.stripe.pay_session(&session);
            case.stripe_path = format!("/v1/checkout/sessions/{session}");
            case.target = session;
        }
    }
    case
}

/// The client's request for `call`.
fn ask(app: &TestApp, call: Call, case: &Case) -> ApiResponse {
    let body = json!({ "order_id": case.order });
    match call {
        Call::CreateSession => app.send_as(&case.user.access_token, "POST", "/api/payments/checkout-session", Some(&body)),
        Call::CreateIntent => app.send_as(&case.user.access_token, "POST", "/api/payments/create-intent", Some(&body)),
        Call::Refund => {
            let admin = app.admin();
            let auth = format!("Bearer {}", admin.access_token);
            let key = format!("refund-{}", case.order);
            let headers = [("authorization", auth.as_str()), ("idempotency-key", key.as_str())];
            app.request("POST", "/api/payments/refund", &headers, Some(&json!({ "order_id": case.order, "amount": 400 })))
        }
        Call::RetrieveSession => app.send_as(&case.user.access_token, "GET", &format!("/api/payments/checkout-session/{}", case.target), None),
    }
}

/// The Stripe calls of this case so far.
fn stripe_calls(app: &TestApp, case: &Case) -> Vec<api_tests::fake_stripe::StripeCall> {
    app.stripe.calls_for(&case.target).into_iter().filter(|c| c.path == case.stripe_path).collect()
}

fn stripe_fault(app: &TestApp, call: Call, fault: Fault) {
    let what = format!("{call:?} with Stripe {fault:?}");
    let case = set_up(app, call);
    let before = state(app, &case.user, &case.order, &case.product);
    match fault {
        Fault::ServerError => app.stripe.fail_next_for(&case.target, 500),
        Fault::CreatedThenServerError => app.stripe.fail_after_create_next_for(&case.target, 500),
        Fault::RateLimited => app.stripe.rate_limit_next_for(&case.target, 7),
        Fault::Hanging => app.stripe.delay_next_for(&case.target, HANG_MS),
    }
    let started = Instant::now();
    let failed = ask(app, call, &case);
    let took = started.elapsed();

    // A clear 503 in the envelope, with Retry-After (Stripe's own after a 429), and soon.
    failed.assert_error(503, "payment_provider_unavailable");
    let retry_after = failed.header("retry-after").unwrap_or_else(|| panic!("{what}: no Retry-After"));
    if fault == Fault::RateLimited {
        assert_eq!(retry_after, "7", "{what}: Stripe's Retry-After is passed on");
    }
    assert!(took < Duration::from_millis(HANG_MS - 1000), "{what}: the request waited {took:?} for Stripe");
    assert_eq!(stripe_calls(app, &case).len(), 1, "{what}: Stripe was asked once");

    // The order and its payment are as they were.
    assert_eq!(state(app, &case.user, &case.order, &case.product), before, "{what}: the failure changed the order");
    let created_first = app.stripe.created_for(&case.stripe_path, &case.target);
    let creates = matches!(call, Call::CreateSession | Call::CreateIntent | Call::Refund);
    // Stripe did the work and answered too late, or failed after it.
    let made_first = creates && matches!(fault, Fault::Hanging | Fault::CreatedThenServerError);
    assert_eq!(created_first.len(), usize::from(made_first), "{what}: Stripe created {created_first:?}");
    // Stripe answered a 5xx that it keeps under the request's key.
    let kept_5xx = creates && matches!(fault, Fault::ServerError | Fault::CreatedThenServerError);

    // The retry succeeds, once; a second retry changes nothing more.
    let again = ask(app, call, &case);
    assert!(again.status == 200 || again.status == 201, "{what}: the retry: {} {}", again.status, again.body);
    let twice = ask(app, call, &case);
    assert!(twice.status == 200 || twice.status == 201, "{what}: the second retry: {} {}", twice.status, twice.body);
    let calls = stripe_calls(app, &case);
    // Every refund attempt first looks at Stripe's refunds (`GET
    // /v1/refunds`) for one an attempt under this key made (Stripe forgets
    // keys after a day): the one made before the 500 or too late for its
    // answer (no second `POST` at all), or else the first retry's (the
    // second retry does not `POST`).
    let posts = match (call, fault) {
        (Call::Refund, Fault::CreatedThenServerError | Fault::Hanging) => 1,
        (Call::Refund, Fault::ServerError | Fault::RateLimited) => 2,
        // The failed attempt gives its turn back, so the first retry asks
        // Stripe; the second, within 2 s of it, answers from the records
        // (`asked_stripe: false`) unless the machine was slower than that.
        (Call::RetrieveSession, _) => {
            assert_eq!(again.json()["asked_stripe"], true, "{what}: the failed attempt gave its turn back: {}", again.body);
            1 + [&again, &twice].iter().filter(|r| r.json()["asked_stripe"] == true).count()
        }
        _ => 3,
    };
    assert_eq!(calls.len(), posts, "{what}: the attempts that asked Stripe");
    let keys: Vec<Option<&String>> = calls.iter().map(|c| c.headers.get("idempotency-key")).collect();
    if kept_5xx && posts > 1 {
        // The first key is spent (Stripe replays its 500); the retries use its next generation.
        let first = keys[0].cloned().unwrap_or_else(|| panic!("{what}: no Idempotency-Key"));
        assert!(keys[1..].iter().all(|k| *k == Some(&format!("{first}#2"))), "{what}: {keys:?}");
    } else if call != Call::RetrieveSession {
        assert!(keys[0].is_some() && keys.iter().all(|k| *k == keys[0]), "{what}: one Idempotency-Key for every attempt: {keys:?}");
    }
    if kept_5xx {
        // As Stripe does, the first request's 500 is replayed to its key:
        // a retry under that key could not have succeeded.
        let (status, body) = app.stripe.resend(&calls[0]);
        assert_eq!((status, body["error"]["type"].as_str()), (500, Some("api_error")), "{what}: {body}");
    }
    let created = app.stripe.created_for(&case.stripe_path, &case.target);
    let objects = payment_of(app, &case.user, &case.order)["objects"].as_array().cloned().unwrap_or_default();
    let of_kind = |kind: &str| objects.iter().filter(|o| o["kind"] == kind).cloned().collect::<Vec<Value>>();
    match call {
        Call::CreateSession | Call::CreateIntent => {
            let kind = if call == Call::CreateSession { "checkout_session" } else { "payment_intent" };
            // After a 500 Stripe keeps, the retry is a new request: the
            // object the failed one made (never shown to anyone) is left to
            // lapse, a second one is made and used.
            let at_stripe = if fault == Fault::CreatedThenServerError { 2 } else { 1 };
            assert_eq!(created.len(), at_stripe, "{what}: objects at Stripe: {created:?}");
            let used = created.last().unwrap().as_str();
            assert_eq!(again.json()["id"], used, "{what}: the retry got the object Stripe made for it");
            assert_eq!(twice.json()["id"], used, "{what}");
            let recorded = of_kind(kind);
            assert_eq!(recorded.len(), 1, "{what}: {objects:?}");
            assert_eq!(recorded[0]["id"], used, "{what}");
            assert_eq!(app.order(&case.user, &case.order)["status"], "pending_payment", "{what}");
            // It works: the session's page is there, the intent has its secret.
            if call == Call::CreateSession {
                let page = ureq::get(again.json()["url"].as_str().unwrap()).call().map(|r| r.status().as_u16());
                assert_eq!(page.ok(), Some(200), "{what}: the payment page");
            } else {
                assert!(again.json()["client_secret"].as_str().is_some_and(|s| s.starts_with(used)), "{what}: {}", again.body);
            }
        }
        Call::Refund => {
            assert_eq!(created.len(), 1, "{what}: one refund at Stripe: {created:?}");
            let intent = case.intent.as_deref().unwrap();
            assert_eq!(app.stripe.refunded_total(intent), 400, "{what}: refunded once at Stripe");
            let at_stripe = app.stripe.refunds_of(intent);
            assert_eq!(at_stripe.len(), 1, "{what}: {at_stripe:?}");
            let marker = format!("refund:{}:refund-{}", case.order, case.order);
            assert_eq!(at_stripe[0]["metadata"]["shop_idempotency_key"], marker.as_str(), "{what}: the refund carries the shop's key");
            for r in [&again, &twice] {
                assert_eq!(r.json()["refund_id"], created[0].as_str(), "{what}: {}", r.body);
                assert_eq!(r.json()["order"]["refunded"]["amount_minor"], 400, "{what}: counted once: {}", r.body);
            }
            let refunds = of_kind("refund");
            assert_eq!(refunds.len(), 1, "{what}: {objects:?}");
            let order = app.order(&case.user, &case.order);
            assert_eq!((order["status"].as_str(), order["refunded"]["amount_minor"].as_i64()), (Some("paid"), Some(400)), "{what}");
            let invoice = app.send_as(&case.user.access_token, "GET", &format!("/api/orders/{}/invoice", case.order), None);
            assert_eq!(invoice.json()["credit_notes"].as_array().map(Vec::len), Some(1), "{what}: one credit note: {}", invoice.body);
        }
        Call::RetrieveSession => {
            assert!(created.is_empty(), "{what}: a retrieval creates nothing");
            assert_eq!(again.json()["order_status"], "paid", "{what}: {}", again.body);
            assert_eq!(twice.json()["order_status"], "paid", "{what}");
            // The webhook for the same payment, after the return applied it, changes nothing.
            let session = app.stripe.session(&case.target);
            assert_eq!(app.stripe_sends(&event(&format!("evt_{}_late", case.order), "checkout.session.completed", session)).status, 200);
            let paid_steps = history(app, &case.user, &case.order).iter().filter(|h| h["to"] == "paid").count();
            assert_eq!(paid_steps, 1, "{what}: paid once");
            assert_eq!(stock(app, &case.product), (4, 0, 4), "{what}: the stock committed once");
            let invoice = app.send_as(&case.user.access_token, "GET", &format!("/api/orders/{}/invoice", case.order), None);
            assert_eq!(invoice.status, 200, "{what}: {}", invoice.body);
        }
    }
}

/// Stripe answering 500 (which it keeps under the request's key and
/// replays, having made the object or not), answering 429 with
/// `Retry-After`, or hanging past `stripe_timeout_ms`, on each call the
/// shop makes: the client gets a prompt 503 `payment_provider_unavailable`
/// with `Retry-After`, the order and its payment stay as they were, and the
/// retry succeeds at once. After a 429 or a hang it uses the same
/// Idempotency-Key (after a hang Stripe replays the object it made, and the
/// shop records it once); after a 500 the key's next generation (`#2`): a
/// session or intent is made anew (the one the failed request may have
/// made was never shown to anyone), and a refund the failed request made is
/// found at Stripe and recorded, not made twice.
#[test]
fn stripe_failing_on_each_call_is_a_clear_503_and_the_retry_makes_no_duplicate() {
    if against_external_app("stripe faults") {
        return;
    }
    let (_host, app) = own_host();
    for call in [Call::CreateSession, Call::CreateIntent, Call::Refund, Call::RetrieveSession] {
        for fault in [Fault::ServerError, Fault::CreatedThenServerError, Fault::RateLimited, Fault::Hanging] {
            stripe_fault(&app, call, fault);
        }
    }
}

/// Found in review: an admin's cancellation again, while its refund was
/// still owed (Stripe had failed it), only retried the refund: the restock
/// it asked for was ignored, and it answered 200.
#[test]
fn cancelling_again_while_the_refund_is_owed_also_restocks() {
    if against_external_app("a refund failed on purpose") {
        return;
    }
    let (_host, app) = own_host();
    let admin = app.admin();
    let (user, product) = app.customer_with_cart(5, 600, 2);
    let order = place(&app, &user);
    let session = app.start_checkout(&user, &order);
    assert_eq!(app.stripe_sends(&event(&format!("evt_{order}_paid"), "checkout.session.completed", app.stripe.pay_session(&session))).status, 200);
    assert_eq!(stock(&app, &product), (3, 0, 3));
    let cancel = |body: Value| app.send_as(&admin.access_token, "PUT", &format!("/api/orders/{order}/status"), Some(&body));
    app.stripe.fail_next_for(&order, 500);
    cancel(json!({ "status": "cancelled", "restock": false })).assert_error(502, "refund_failed");
    assert_eq!(stock(&app, &product), (3, 0, 3), "kept off the shelf");
    let r = cancel(json!({ "status": "cancelled", "restock": true }));
    assert_eq!((r.status, r.json()["refunded"]["amount_minor"].as_i64()), (200, Some(1200)), "{}", r.body);
    assert_eq!(stock(&app, &product), (5, 0, 5), "the refund retried, and the units back as asked");
}

/// A paid order's cancellation refund, and an automatic refund (a second
/// payment for a paid order), when Stripe answers the refund with a 500 it
/// keeps under the key: whether or not Stripe made the refund before its
/// 500, the next attempt (cancelling again; the orders sweep) looks for it
/// at Stripe by the shop's key in its metadata and records that one, or
/// makes it under the key's next generation: one refund at Stripe, counted
/// once.
#[test]
fn cancel_and_automatic_refunds_after_a_kept_500_refund_once() {
    if against_external_app("refunds after a kept 500") {
        return;
    }
    let (_host, app) = own_host();
    let admin = app.admin();
    let refund_posts = |text: &str| app.stripe.calls_for(text).into_iter().filter(|c| c.path == "/v1/refunds").count();
    for made_first in [true, false] {
        let what = if made_first { "made, then 500" } else { "500, nothing made" };
        let inject = |text: &str| if made_first { app.stripe.fail_after_create_next_for(text, 500) } else { app.stripe.fail_next_for(text, 500) };

        // The customer cancels a paid order.
        let (user, _) = app.customer_with_cart(5, 600, 2);
        let order = place(&app, &user);
        let session = app.start_checkout(&user, &order);
        let paid = app.stripe.pay_session(&session);
        let intent = paid["payment_intent"].as_str().unwrap().to_string();
        assert_eq!(app.stripe_sends(&event(&format!("evt_{order}_paid"), "checkout.session.completed", paid)).status, 200);
        inject(&order);
        let cancel = || app.send_as(&user.access_token, "POST", &format!("/api/orders/{order}/cancel"), None);
        cancel().assert_error(502, "refund_failed");
        let o = app.order(&user, &order);
        assert_eq!((o["status"].as_str(), o["refunded"]["amount_minor"].as_i64()), (Some("cancelled"), Some(0)), "{what}: {o}");
        assert!(o["flags"].as_array().unwrap().iter().any(|f| f == "refund_failed"), "{what}: {o}");
        assert_eq!(app.stripe.refunds_of(&intent).len(), usize::from(made_first), "{what}");
        let r = cancel();
        assert_eq!(r.status, 200, "{what}: {}", r.body);
        assert_eq!(r.json()["refunded"]["amount_minor"], 1200, "{what}: {}", r.body);
        let at_stripe = app.stripe.refunds_of(&intent);
        assert_eq!(at_stripe.len(), 1, "{what}: one refund at Stripe: {at_stripe:?}");
        assert_eq!(app.stripe.refunded_total(&intent), 1200, "{what}");
        assert_eq!(at_stripe[0]["metadata"]["shop_idempotency_key"], format!("refund:{order}:cancel").as_str(), "{what}");
        assert_eq!(refund_posts(&order), if made_first { 1 } else { 2 }, "{what}: a found refund is not made again");
        assert_eq!(cancel().status, 200, "{what}: cancelling once more");
        let p = payment_of(&app, &user, &order);
        let refunds: Vec<&Value> = p["objects"].as_array().unwrap().iter().filter(|o| o["kind"] == "refund").collect();
        assert_eq!(refunds.len(), 1, "{what}: {p}");
        assert_eq!((refunds[0]["id"].as_str(), refunds[0]["amount_minor"].as_i64()), (at_stripe[0]["id"].as_str(), Some(1200)), "{what}");
        assert_eq!(app.order(&user, &order)["refunded"]["amount_minor"], 1200, "{what}: counted once");
        let invoice = app.send_as(&admin.access_token, "GET", &format!("/api/orders/{order}/invoice"), None);
        assert_eq!(invoice.json()["credit_notes"].as_array().map(Vec::len), Some(1), "{what}: one credit note: {}", invoice.body);

        // A second payment for a paid order is returned automatically.
        let (user, _) = app.customer_with_cart(5, 250, 1);
        let order = place(&app, &user);
        let session = app.start_checkout(&user, &order);
        assert_eq!(app.stripe_sends(&event(&format!("evt_{order}_first"), "checkout.session.completed", app.stripe.pay_session(&session))).status, 200);
        let second = format!("pi_second_{order}");
        let pi = json!({ "id": second, "object": "payment_intent", "amount_received": 250, "currency": "usd", "metadata": { "order_id": order } });
        inject(&second);
        let r = app.stripe_sends(&event(&format!("evt_{order}_second"), "payment_intent.succeeded", pi));
        assert_eq!((r.status, r.json()["applied"]["problem"].as_str()), (200, Some("paid_twice")), "{what}: {}", r.body);
        let owed = || payment_of(&app, &user, &order)["automatic_refunds"][0].clone();
        assert_eq!(owed()["status"], "pending", "{what}: {}", owed());
        assert_eq!(app.stripe.refunds_of(&second).len(), usize::from(made_first), "{what}");
        let r = app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
        assert_eq!(r.status, 200, "{}", r.body);
        let at_stripe = app.stripe.refunds_of(&second);
        assert_eq!(at_stripe.len(), 1, "{what}: one refund at Stripe: {at_stripe:?}");
        assert_eq!(at_stripe[0]["metadata"]["shop_idempotency_key"], format!("auto-refund:{second}").as_str(), "{what}");
        assert_eq!((owed()["status"].as_str(), owed()["stripe_refund"].as_str()), (Some("refunded"), at_stripe[0]["id"].as_str()), "{what}: {}", owed());
        assert_eq!(refund_posts(&second), if made_first { 1 } else { 2 }, "{what}");
        let p = payment_of(&app, &user, &order);
        let refunds: Vec<&Value> = p["objects"].as_array().unwrap().iter().filter(|o| o["kind"] == "refund").collect();
        assert_eq!(refunds.len(), 1, "{what}: {p}");
        assert_eq!((refunds[0]["parent_id"].as_str(), refunds[0]["amount_minor"].as_i64()), (Some(second.as_str()), Some(250)), "{what}");
        let o = app.order(&user, &order);
        assert_eq!((o["status"].as_str(), o["refunded"]["amount_minor"].as_i64()), (Some("paid"), Some(0)), "{what}: the order's own payment is untouched");
    }
}

/// Stripe down for a while: every attempt during the outage is a 503 and
/// leaves nothing behind; the first one after it creates the one intent or
/// Checkout Session. The outage outlasts a second, so a Checkout Session's
/// expiry chosen by the first attempt is no longer 30 minutes ahead by the
/// last one's clock: Stripe (the fake, like Stripe) refuses an expiry any
/// nearer, so the shop must have kept its own clear of that bound.
#[test]
fn every_retry_during_a_stripe_outage_fails_cleanly_and_the_first_after_it_pays() {
    if against_external_app("stripe outage") {
        return;
    }
    let (_host, app) = own_host();
    for call in [Call::CreateIntent, Call::CreateSession] {
        let case = set_up(&app, call);
        let before = state(&app, &case.user, &case.order, &case.product);
        app.stripe.start_outage(&case.order, 503);
        for _ in 0..3 {
            ask(&app, call, &case).assert_error(503, "payment_provider_unavailable");
        }
        assert_eq!(state(&app, &case.user, &case.order, &case.product), before, "{call:?}");
        std::thread::sleep(Duration::from_millis(1100));
        app.stripe.end_outage(&case.order);
        let paid = ask(&app, call, &case);
        assert_eq!(paid.status, 201, "{call:?}: {}", paid.body);
        assert_eq!(app.stripe.created_for(&case.stripe_path, &case.order), vec![paid.json()["id"].as_str().unwrap().to_string()], "{call:?}");
        assert_eq!(stripe_calls(&app, &case).len(), 4, "{call:?}");
    }
}

/// During a Stripe outage the orders sweep stops asking Stripe at its
/// first failure and leaves the rest due for its next call (found in
/// review: it waited out every payment page's timeout in turn, half an
/// hour for 150 expired orders); once Stripe is back, one call closes them.
#[test]
fn the_sweep_stops_asking_stripe_at_the_first_failure_and_closes_the_rest_later() {
    let (host, app) = own_host();
    let mut orders = Vec::new();
    for _ in 0..3 {
        let (user, _) = app.customer_with_cart(5, 400, 1);
        let id = place(&app, &user);
        app.start_checkout(&user, &id);
        orders.push(id);
    }
    let db = host.database("orders");
    for id in &orders {
        db.execute("UPDATE orders SET expires_at = 10 WHERE id = ?", &[id.as_str().into()]).unwrap();
    }
    let expiring = || app.stripe.calls().into_iter().filter(|c| c.path.starts_with("/v1/checkout/sessions/") && c.path.ends_with("/expire")).count();
    let sweep = || {
        let r = app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    app.stripe.start_outage("/expire", 503);
    // Until the three are expired (a slow machine may need more than one
    // call's time budget): each call asks Stripe at most once.
    let (mut expired, mut calls) = (0, 0);
    while expired < 3 && calls < 10 {
        let r = sweep();
        assert_eq!(r["payment_objects_closed"], 0, "{r}");
        expired += r["expired"].as_u64().unwrap();
        calls += 1;
    }
    assert_eq!(expired, 3);
    assert!(expiring() <= calls, "one failed call per sweep at most: {} in {calls}", expiring());
    let during = expiring();
    app.stripe.end_outage("/expire");
    let mut closed = 0;
    for _ in 0..10 {
        let r = sweep();
        closed += r["payment_objects_closed"].as_u64().unwrap();
        if r["more"] == false {
            break;
        }
    }
    assert_eq!(closed, 3);
    assert_eq!(expiring(), during + 3);
    let still_due = count(&host, "orders", "SELECT COUNT(*) AS n FROM payments WHERE stripe_cleanup = 'due' AND order_id = ?", &orders[0]);
    assert_eq!(still_due, 0);
}

// ------------------------------------------------------- locked databases

/// Another session keeping a service database's writers out: on SQLite its
/// write lock (`BEGIN IMMEDIATE`; in WAL mode readers go on), on Postgres
/// every table locked `IN EXCLUSIVE MODE` (plain reads go on; every write,
/// row lock and `FOR UPDATE` waits). Dropped: rolled back, locks gone.
struct WriteLock(Box<dyn Db>);

impl WriteLock {
    fn take(host: &OwnHost, label: &str) -> WriteLock {
        let db = host.database(label);
        match db.dialect() {
            Dialect::Sqlite => db.execute("BEGIN IMMEDIATE", &[]).expect("take the write lock"),
            Dialect::Postgres => {
                // Should the app wait for the lock after all, it goes after a
                // minute: the test fails on the late answer instead of hanging.
                db.execute("SET idle_in_transaction_session_timeout = 60000", &[]).unwrap();
                db.execute("BEGIN", &[]).unwrap();
                let tables = db.query("SELECT tablename::text AS t FROM pg_tables WHERE schemaname = current_schema()", &[]).unwrap();
                let names: Vec<String> = tables.iter().map(|t| format!("\"{}\"", t.text("t").unwrap())).collect();
                db.execute(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", names.join(", ")), &[]).expect("lock the tables");
            }
        }
        WriteLock(db)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.0.execute("ROLLBACK", &[]);
    }
}

/// `SELECT COUNT(*) AS n ...` with one parameter, on the service database `label`.
fn count(host: &OwnHost, label: &str, sql: &str, param: &str) -> i64 {
    let rows = host.database(label).query(sql, &[param.into()]).expect(sql);
    rows.first().expect(sql).int("n").expect(sql)
}

/// Send `write` while another session keeps the writers of database
/// `label` out, for longer than the app waits for a lock ([`LOCK_WAIT`]),
/// and check the answer: 503 `database_unavailable` with `Retry-After`,
/// after that wait and soon after it. `read`, sent first under the same
/// lock, answers at once: readers go on.
fn refused_while_locked(host: &OwnHost, label: &str, read: impl FnOnce() -> ApiResponse, write: impl FnOnce() -> ApiResponse) {
    let _lock = WriteLock::take(host, label);
    let started = Instant::now();
    let r = read();
    assert_eq!(r.status, 200, "{label} locked, a read: {}", r.body);
    assert!(started.elapsed() < LOCK_WAIT / 2, "{label} locked, a read took {:?}: it waited for the lock", started.elapsed());
    let started = Instant::now();
    let r = write();
    let took = started.elapsed();
    r.assert_error(503, "database_unavailable");
    assert!(r.header("retry-after").is_some(), "{}", r.body);
    assert!(took > LOCK_WAIT - Duration::from_millis(100), "{label} locked: refused after {took:?}, before waiting for the lock");
    assert!(took < LOCK_WAIT * 2, "{label} locked: refused only after {took:?}");
}

/// A service database kept from writers by another session for longer
/// than the app waits for a lock ([`LOCK_WAIT`], 5 s): on SQLite, its write
/// lock held (the app's wait is the busy timeout Spin's connections keep);
/// on Postgres, every table locked (the app's wait is the `lock_timeout` it
/// sets). Each write answers 503 `database_unavailable` with `Retry-After`
/// after that wait, writes nothing of itself, and succeeds once the lock
/// goes; reads go on meanwhile.
#[test]
fn a_database_locked_from_outside_is_a_503_and_nothing_is_half_written() {
    if against_external_app("locked database") {
        return;
    }
    let (host, app) = own_host();
    let admin = app.admin();
    let (user, product) = app.customer_with_cart(5, 1000, 2);
    // The orders database exists and is migrated before it is locked.
    let orders = || app.send_as(&user.access_token, "GET", "/api/orders", None);
    assert_eq!(orders().status, 200);
    let product_page = || app.send_as(&admin.access_token, "GET", &format!("/api/products/{product}"), None);

    // The catalog locked: an admin's new product.
    let sku = unique_sku("locked");
    let body = json!({ "sku": sku, "name": "Locked Lamp", "price": { "amount_minor": 500, "currency": "USD" }, "stock_on_hand": 3 });
    refused_while_locked(&host, "catalog", product_page, || app.create_product(&admin, body.clone()));
    assert_eq!(count(&host, "catalog", "SELECT COUNT(*) AS n FROM products WHERE sku = ?", &sku), 0, "nothing written");
    let r = app.create_product(&admin, body);
    assert_eq!(r.status, 201, "after the lock: {}", r.body);
    assert_eq!(count(&host, "catalog", "SELECT COUNT(*) AS n FROM products WHERE sku = ?", &sku), 1);

    // The orders database locked: placing an order, whose stock hold (in the
    // catalog) is taken first and must be given back.
    let key = unique_email("locked-order");
    refused_while_locked(&host, "orders", orders, || app.place_order(&user, Some(&key), Some(address())));
    assert_eq!(count(&host, "orders", "SELECT COUNT(*) AS n FROM orders WHERE user_id = ?", &user.id), 0, "no order");
    assert_eq!(stock(&app, &product), (5, 0, 5), "the hold was given back");
    let cart = app.get_cart(&mut Shopper::user(&user.access_token)).json();
    assert_eq!(cart["item_count"], 2, "the cart is untouched: {cart}");
    let r = app.place_order(&user, Some(&key), Some(address()));
    assert_eq!(r.status, 201, "after the lock: {}", r.body);
    let order = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(stock(&app, &product), (5, 2, 3));

    // The orders database locked: Stripe's signed webhook for that order's
    // payment. Not recorded, so Stripe's redelivery is applied, once.
    let session = app.start_checkout(&user, &order);
    let paid = event(&format!("evt_{order}_locked"), "checkout.session.completed", app.stripe.pay_session(&session));
    refused_while_locked(&host, "orders", || app.send_as(&user.access_token, "GET", &format!("/api/orders/{order}"), None), || app.stripe_sends(&paid));
    assert_eq!(app.order(&user, &order)["status"], "pending_payment");
    assert_eq!(count(&host, "orders", "SELECT COUNT(*) AS n FROM stripe_events WHERE order_id = ?", &order), 0);
    assert_eq!(stock(&app, &product), (5, 2, 3));
    assert_eq!(app.stripe_sends(&paid).status, 200);
    assert_eq!(app.order(&user, &order)["status"], "paid");
    assert_eq!(stock(&app, &product), (3, 0, 3));
}

/// Two admins changing different fields of one category at once: both
/// changes stand. The writes are held at the catalog's lock by another
/// session until both have started; on Postgres, where a plain read does
/// not wait for a writer, each used to read the category before the other
/// committed, and the second `UPDATE` wrote the first's field back (found
/// in review). Now the row is locked before it is read, as for products.
#[test]
fn two_edits_of_one_category_at_once_both_stand() {
    if against_external_app("category edits") {
        return;
    }
    let (host, app) = own_host();
    let admin = app.admin();
    let slug = unique_sku("cat").to_lowercase();
    let r = app.send_as(&admin.access_token, "POST", "/api/categories", Some(&json!({ "slug": slug, "name": "Lamps", "description": "Light" })));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let edit = |body: Value| app.send_as(&admin.access_token, "PUT", &format!("/api/categories/{id}"), Some(&body));
    let lock = WriteLock::take(&host, "catalog");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| edit(json!({ "name": "Desk lamps" })));
        let b = s.spawn(|| edit(json!({ "description": "Bright light" })));
        // Both have started and wait for the lock (well within LOCK_WAIT).
        std::thread::sleep(LOCK_WAIT / 4);
        drop(lock);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.body, b.body);
    let listed = app.request("GET", "/api/categories", &[], None).json();
    let category = listed["categories"].as_array().unwrap().iter().find(|c| c["id"] == id.as_str()).cloned().unwrap();
    assert_eq!((category["name"].as_str(), category["description"].as_str()), (Some("Desk lamps"), Some("Bright light")), "{category}");
}

// ------------------------------------------------ a webhook failing mid-way

/// The emails to `email` whose idempotency key is `key`, once at least one
/// has gone out (sweeping until then).
fn emails_with_key(app: &TestApp, email: &str, key: &str) -> usize {
    let count = || app.resend.to(email).iter().filter(|c| c.idempotency_key() == key).count();
    for _ in 0..100 {
        if count() > 0 {
            break;
        }
        let r = app.request("POST", "/api/notifications/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
        assert_eq!(r.status, 200, "{}", r.body);
        std::thread::sleep(Duration::from_millis(50));
    }
    // One more sweep: a second email would have gone out with it.
    app.request("POST", "/api/notifications/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
    count()
}

/// A payment event whose processing fails part way: the transaction that
/// pays the order (checkout database) has committed, owing the sale, when
/// the catalog (its database locked from outside) cannot sell the held
/// units. The app answers 503 so Stripe retries. The order is paid, once,
/// with its invoice; its units stay held for it, so nobody else can buy
/// them; nothing is sold yet. What finishes the sale, once: Stripe's
/// redelivery (a duplicate event for the order, answered as such) for a
/// Checkout Session, the orders sweep for a PaymentIntent. Either way: one
/// paid transition, one invoice, one paid email, the stock sold once.
#[test]
fn a_webhook_failing_mid_way_is_retried_by_stripe_and_applied_once() {
    if against_external_app("webhook failing mid-way") {
        return;
    }
    let (host, app) = own_host();
    for kind in ["checkout.session.completed", "payment_intent.succeeded"] {
        let (user, product) = app.customer_with_cart(5, 1000, 2);
        let order = place(&app, &user);
        let object = if kind == "checkout.session.completed" {
            let session = app.start_checkout(&user, &order);
            app.stripe.pay_session(&session)
        } else {
            let r = app.send_as(&user.access_token, "POST", "/api/payments/create-intent", Some(&json!({ "order_id": order })));
            assert_eq!(r.status, 201, "{}", r.body);
            json!({ "id": r.json()["id"], "object": "payment_intent", "status": "succeeded", "amount_received": 2000, "currency": "usd", "metadata": { "order_id": order } })
        };
        let paid = event(&format!("evt_{order}_midway"), kind, object);
        {
            let _lock = WriteLock::take(&host, "catalog");
            let r = app.stripe_sends(&paid);
            r.assert_error(503, "inventory_unavailable");
            assert!(r.header("retry-after").is_some(), "{kind}: {}", r.body);
        }
        assert_eq!(app.order(&user, &order)["status"], "paid", "{kind}: the payment stands");
        assert_eq!(stock(&app, &product), (5, 2, 3), "{kind}: the units are still held for the order, not sold");
        assert_eq!(count(&host, "orders", "SELECT COUNT(*) AS n FROM owed_stock WHERE order_id = ?", &order), 1, "{kind}: the sale is owed");

        if kind == "checkout.session.completed" {
            // Stripe redelivers the event: a duplicate, which makes the sale.
            let r = app.stripe_sends(&paid);
            assert_eq!((r.status, r.json()["ignored"].as_str()), (200, Some("duplicate event")), "{kind}: {}", r.body);
        } else {
            let r = app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
            assert_eq!(r.status, 200, "{kind}: {}", r.body);
        }
        assert_eq!(stock(&app, &product), (3, 0, 3), "{kind}: the stock sold once");
        assert_eq!(count(&host, "orders", "SELECT COUNT(*) AS n FROM owed_stock WHERE order_id = ?", &order), 0, "{kind}: nothing owed");
        // And again: nothing changes.
        let r = app.stripe_sends(&paid);
        assert_eq!((r.status, r.json()["ignored"].as_str()), (200, Some("duplicate event")), "{kind}: {}", r.body);
        app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
        assert_eq!(stock(&app, &product), (3, 0, 3), "{kind}: the stock sold once");
        assert_eq!(app.order(&user, &order)["status"], "paid", "{kind}");
        assert!(app.order(&user, &order)["flags"].as_array().is_none_or(|f| f.is_empty()), "{kind}: no flag");
        assert_eq!(history(&app, &user, &order).iter().filter(|h| h["to"] == "paid").count(), 1, "{kind}: one paid transition");
        let invoice = app.send_as(&user.access_token, "GET", &format!("/api/orders/{order}/invoice"), None);
        assert_eq!(invoice.status, 200, "{kind}: {}", invoice.body);
        let number = invoice.json()["invoice"]["number"].as_str().unwrap_or_default().to_string();
        assert!(!number.is_empty(), "{kind}: {}", invoice.body);
        assert_eq!(emails_with_key(&app, &user.email, &format!("order.paid/{order}")), 1, "{kind}: one paid email");
    }
}

/// What `/metrics` says is owed to the catalog of one kind (`stock` or
/// `restock`): how many, and the oldest one's age in seconds.
fn owed_on_metrics(app: &TestApp, change: &str) -> (f64, f64) {
    let r = app.request("GET", "/metrics", &[("authorization", &format!("Bearer {METRICS_SECRET}"))], None);
    assert_eq!(r.status, 200, "{}", r.body);
    let value = |family: &str| {
        let prefix = format!("{family}{{change=\"{change}\"}} ");
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{}", r.body))
    };
    (value("shop_catalog_changes_owed"), value("shop_catalog_changes_owed_oldest_age_seconds"))
}

/// A placement that fails after its stock hold was taken (the checkout
/// database kept from writers) while the catalog cannot take the hold
/// back either (its database locked too): the client gets the 503, the
/// release is recorded as owed once the checkout database is free, and the
/// orders sweep gives the units back, instead of leaving them held for an
/// order that does not exist until the hold lapses.
#[test]
fn a_failed_placement_whose_hold_cannot_be_given_back_owes_the_release() {
    if against_external_app("failed placement release") {
        return;
    }
    // Holds that outlive the test, so "still held" is not a lapse away.
    let (host, app) = own_host_with(&[("unpaid_order_ttl_secs", "600")]);
    let (user, product) = app.customer_with_cart(5, 1000, 2);
    let key = unique_email("owed-release");
    // The checkout database exists and is migrated before it is locked.
    assert_eq!(app.send_as(&user.access_token, "GET", "/api/orders", None).status, 200);
    let orders_lock = WriteLock::take(&host, "orders");
    let r = std::thread::scope(|s| {
        let placing = s.spawn(|| app.place_order(&user, Some(&key), Some(address())));
        // The hold is taken at once; then the order's transaction waits for
        // the checkout database (LOCK_WAIT) and fails.
        let started = Instant::now();
        while stock(&app, &product) != (5, 2, 3) {
            assert!(started.elapsed() < LOCK_WAIT / 2, "no hold taken: {:?}", stock(&app, &product));
            std::thread::sleep(Duration::from_millis(20));
        }
        let held = Instant::now();
        let catalog_lock = WriteLock::take(&host, "catalog");
        // The checkout database comes free after the order's transaction
        // has given up (LOCK_WAIT after the hold) and well before the
        // release, which waits as long again for the catalog, gives up.
        std::thread::sleep((LOCK_WAIT + LOCK_WAIT / 2).saturating_sub(held.elapsed()));
        drop(orders_lock);
        let r = placing.join().unwrap();
        drop(catalog_lock);
        r
    });
    r.assert_error(503, "database_unavailable");
    assert_eq!(count(&host, "orders", "SELECT COUNT(*) AS n FROM orders WHERE user_id = ?", &user.id), 0, "no order");
    assert_eq!(stock(&app, &product), (5, 2, 3), "still held: the catalog refused the release");
    assert_eq!(owed_on_metrics(&app, "stock").0, 1.0, "the release is owed");
    let r = app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(stock(&app, &product), (5, 0, 5), "released by the sweep");
    assert_eq!(owed_on_metrics(&app, "stock"), (0.0, 0.0), "nothing owed any more");
    // The cart is as it was, and the same request now places it.
    let r = app.place_order(&user, Some(&key), Some(address()));
    assert_eq!(r.status, 201, "after the locks: {}", r.body);
    assert_eq!(stock(&app, &product), (5, 2, 3));
}

/// Cancelling an unpaid order while the catalog cannot release its hold:
/// the order is cancelled at once (the checkout database does not wait for
/// the catalog's lock), its units stay held until the release it owes is
/// made, and the orders sweep makes it, once.
#[test]
fn a_cancellation_while_the_catalog_is_locked_releases_the_hold_afterwards() {
    if against_external_app("cancellation release") {
        return;
    }
    // Holds that outlive the test: the suite's 8 s would let the hold lapse
    // (and a read release it) while the cancellation waits for the lock on
    // a busy machine, and "still held" would not be what is tested.
    let (host, app) = own_host_with(&[("unpaid_order_ttl_secs", "600")]);
    let (user, product) = app.customer_with_cart(5, 1000, 2);
    let order = place(&app, &user);
    assert_eq!(stock(&app, &product), (5, 2, 3));
    {
        let _lock = WriteLock::take(&host, "catalog");
        let r = app.send_as(&user.access_token, "POST", &format!("/api/orders/{order}/cancel"), None);
        assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("cancelled")), "{}", r.body);
    }
    assert_eq!(stock(&app, &product), (5, 2, 3), "still held: the release is owed");
    assert_eq!(count(&host, "orders", "SELECT COUNT(*) AS n FROM owed_stock WHERE order_id = ?", &order), 1);
    let (owed, age) = owed_on_metrics(&app, "stock");
    assert!(owed == 1.0 && (0.0..120.0).contains(&age), "/metrics shows the owed release: {owed} owed, oldest {age} s");
    let r = app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(stock(&app, &product), (5, 0, 5), "released by the sweep");
    assert_eq!(count(&host, "orders", "SELECT COUNT(*) AS n FROM owed_stock WHERE order_id = ?", &order), 0);
    assert_eq!(owed_on_metrics(&app, "stock"), (0.0, 0.0), "nothing owed any more");
    app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
    assert_eq!(stock(&app, &product), (5, 0, 5), "once");
    assert_eq!(app.order(&user, &order)["status"], "cancelled");

    // The same cancellation sent again (what a client does after a slow
    // answer) makes the release as well.
    assert_eq!(app.add_to_cart(&mut Shopper::user(&user.access_token), &product, 2).status, 200);
    let second = place(&app, &user);
    let cancel = || app.send_as(&user.access_token, "POST", &format!("/api/orders/{second}/cancel"), None);
    {
        let _lock = WriteLock::take(&host, "catalog");
        assert_eq!(cancel().status, 200);
    }
    assert_eq!(stock(&app, &product), (5, 2, 3), "still held");
    let r = cancel();
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("cancelled")), "{}", r.body);
    assert_eq!(stock(&app, &product), (5, 0, 5), "released by the repeated cancellation");
    assert_eq!(count(&host, "orders", "SELECT COUNT(*) AS n FROM owed_stock WHERE order_id = ?", &second), 0);
}

/// Cancelling a paid order while the catalog cannot take the units back:
/// the cancellation and its refund stand, the restock stays owed (recorded
/// in the cancelling transaction), and the same cancellation sent again —
/// what a client does after an error — puts the units back and notes it,
/// once. Before, a restock that failed after the order was cancelled was
/// only flagged, and a repeated cancel did nothing.
#[test]
fn a_cancellation_whose_restock_failed_is_finished_by_the_next_attempt() {
    if against_external_app("cancellation restock") {
        return;
    }
    let (host, app) = own_host();
    let (user, product) = app.customer_with_cart(5, 1000, 2);
    let order = place(&app, &user);
    let session = app.start_checkout(&user, &order);
    let paid = event(&format!("evt_{order}_paid"), "checkout.session.completed", app.stripe.pay_session(&session));
    assert_eq!(app.stripe_sends(&paid).status, 200);
    assert_eq!(stock(&app, &product), (3, 0, 3));
    let cancel = || app.send_as(&user.access_token, "POST", &format!("/api/orders/{order}/cancel"), None);
    {
        let _lock = WriteLock::take(&host, "catalog");
        let r = cancel();
        assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("cancelled")), "{}", r.body);
    }
    assert_eq!(stock(&app, &product), (3, 0, 3), "the catalog could not take the units back");
    assert_eq!(count(&host, "orders", "SELECT COUNT(*) AS n FROM owed_restocks WHERE order_id = ?", &order), 1, "the restock is owed");
    assert_eq!(owed_on_metrics(&app, "restock").0, 1.0, "and /metrics shows it");
    let restocked = |app: &TestApp| history(app, &user, &order).iter().filter(|h| h["reason"].as_str().is_some_and(|r| r.starts_with("restocked (cancel:all)"))).count();
    assert_eq!(restocked(&app), 0);

    let r = cancel();
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("cancelled")), "{}", r.body);
    assert_eq!(stock(&app, &product), (5, 0, 5), "the units are back");
    assert_eq!(restocked(&app), 1, "and noted");
    assert_eq!(count(&host, "orders", "SELECT COUNT(*) AS n FROM owed_restocks WHERE order_id = ?", &order), 0);
    assert_eq!(owed_on_metrics(&app, "restock"), (0.0, 0.0));
    assert_eq!(cancel().status, 200);
    assert_eq!((stock(&app, &product), restocked(&app)), ((5, 0, 5), 1), "once");
    assert_eq!(app.stripe.refunded_total(app.stripe.session(&session)["payment_intent"].as_str().unwrap()), 2000, "refunded once");
}
