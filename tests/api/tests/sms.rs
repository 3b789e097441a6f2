//! SMS about orders through (a fake) Twilio, only to customers who gave a
//! phone number with SMS consent: the same outbox, deliveries, retries and
//! backoff as email, Twilio's error semantics, and SMS as a channel in the
//! admin listing. Phone numbers are neither verified nor unique, so an SMS
//! belongs to the account it was made for, not to whoever holds its number.

use api_tests::fake_twilio::{ACCOUNT_SID, AUTH_TOKEN, SMS_FROM};
use api_tests::{event, Shopper, TestApp, TestUser, SWEEP_SECRET};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};

/// A phone number no other test (or run) uses: +44 70 digits made unique
/// from the process id and a counter.
fn unique_phone() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("+4470{:05}{:04}", std::process::id() % 100_000, N.fetch_add(1, Ordering::Relaxed))
}

fn sweep(app: &TestApp) {
    let r = app.request("POST", "/api/notifications/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
    assert_eq!(r.status, 200, "{}", r.body);
}

fn set_phone(app: &TestApp, user: &TestUser, body: Value) -> api_tests::ApiResponse {
    app.send_as(&user.access_token, "PUT", "/api/users/phone", Some(&body))
}

/// The SMS to `phone` once `n` have arrived (sweeping meanwhile).
fn sms_to(app: &TestApp, phone: &str, n: usize) -> Vec<api_tests::fake_twilio::SmsCall> {
    for _ in 0..100 {
        let calls = app.twilio.to(phone);
        if calls.len() >= n {
            return calls;
        }
        sweep(app);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{n} SMS to {phone} never went out: {:?}", app.twilio.to(phone));
}

fn sms_deliveries(app: &TestApp, admin: &TestUser, phone: &str) -> Vec<Value> {
    let all = app.send_as(&admin.access_token, "GET", "/api/admin/notifications?channel=sms&limit=100", None).json();
    all["notifications"].as_array().unwrap().iter().filter(|d| d["recipient"] == phone).cloned().collect()
}

/// The SMS delivery to `phone` once it has this status (the fake records a
/// call before the app records its outcome, so poll).
fn delivery_with_status(app: &TestApp, admin: &TestUser, phone: &str, status: &str) -> Value {
    for _ in 0..100 {
        if let Some(d) = sms_deliveries(app, admin, phone).into_iter().find(|d| d["status"] == status) {
            return d;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no {status} SMS delivery to {phone}: {:?}", sms_deliveries(app, admin, phone));
}

/// A customer with a cart and a fresh phone number (with or without SMS
/// consent): the user and the number.
fn customer_with_phone(app: &TestApp, consent: bool) -> (TestUser, String) {
    let (user, _) = app.customer_with_cart(5, 300, 1);
    let phone = unique_phone();
    let r = set_phone(app, &user, json!({ "phone": phone, "sms_consent": consent }));
    assert_eq!(r.status, 200, "{}", r.body);
    (user, phone)
}

/// `user` places an order from their cart and cancels it (still unpaid).
fn place_and_cancel(app: &TestApp, user: &TestUser) {
    let id = app.place_order(user, None, None).json()["id"].as_str().unwrap().to_string();
    let r = app.send_as(&user.access_token, "POST", &format!("/api/orders/{id}/cancel"), None);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A paid order of `user` (who has a cart): its id.
fn paid_order(app: &TestApp, user: &TestUser) -> String {
    let id = app.place_order(user, None, None).json()["id"].as_str().unwrap().to_string();
    let session = app.start_checkout(user, &id);
    app.stripe_sends(&event(&format!("evt_{id}_sms"), "checkout.session.completed", app.stripe.pay_session(&session)));
    id
}

#[test]
fn customers_add_a_phone_number_with_explicit_consent() {
    let app = TestApp::get();
    let user = app.register_customer();
    let r = set_phone(&app, &user, json!({ "phone": "+44 20 7946 0958", "sms_consent": true }));
    assert_eq!(r.status, 200, "{}", r.body);
    let u = &r.json()["user"];
    assert_eq!(u["phone"], "+442079460958", "stored in E.164");
    let consent_at = u["sms_consent_at"].as_str().expect("consent timestamped").to_string();
    let me = app.send_as(&user.access_token, "GET", "/api/users/profile", None).json();
    assert_eq!(me["user"]["sms_consent_at"], consent_at.as_str());

    // Consenting again to the same number keeps the first time; refusing clears it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = set_phone(&app, &user, json!({ "phone": "+442079460958", "sms_consent": true })).json();
    assert_eq!(again["user"]["sms_consent_at"], consent_at.as_str());
    let refused = set_phone(&app, &user, json!({ "phone": "+442079460958", "sms_consent": false })).json();
    assert_eq!((refused["user"]["phone"].as_str(), refused["user"]["sms_consent_at"].as_str()), (Some("+442079460958"), None));

    for bad in ["02079460958", "+0123456789", "+1 415 555 0123 x9", "+12"] {
        let v = set_phone(&app, &user, json!({ "phone": bad, "sms_consent": true })).assert_error(422, "validation_failed");
        assert!(v["error"]["details"]["fields"]["phone"].is_string(), "{bad}: {v}");
    }
    // Consent is never assumed: it must be sent, as a boolean.
    set_phone(&app, &user, json!({ "phone": "+14155550123" })).assert_error(400, "invalid_json");
    set_phone(&app, &user, json!({ "phone": "+14155550123", "sms_consent": "yes" })).assert_error(400, "invalid_json");
    app.request("PUT", "/api/users/phone", &[], Some(&json!({ "phone": "+14155550123", "sms_consent": true }))).assert_error(401, "unauthorized");

    // The export shows the number and the consent; removing withdraws both.
    set_phone(&app, &user, json!({ "phone": "+442079460958", "sms_consent": true }));
    let export = app.send_as(&user.access_token, "GET", "/api/users/me/export", None).json();
    assert_eq!(export["consent"]["sms"]["given"], true);
    assert_eq!(export["profile"]["phone"], "+442079460958");
    assert!(export["sms"].is_array());
    let r = app.send_as(&user.access_token, "DELETE", "/api/users/phone", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["user"]["phone"].is_null() && r.json()["user"]["sms_consent_at"].is_null());
}

#[test]
fn shipped_and_cancelled_orders_text_a_consenting_customer() {
    let app = TestApp::get();
    let admin = app.admin();
    let (user, _) = app.customer_with_cart(5, 1250, 2);
    let phone = unique_phone();
    assert_eq!(set_phone(&app, &user, json!({ "phone": phone, "sms_consent": true })).status, 200);
    let id = paid_order(&app, &user);
    let r = app.send_as(&admin.access_token, "PUT", &format!("/api/orders/{id}/tracking"), Some(&json!({ "carrier": "DHL", "tracking_number": "JD0001" })));
    assert_eq!(r.status, 200, "{}", r.body);
    let calls = sms_to(&app, &phone, 1);
    let short = id.split('-').next().unwrap();
    let c = &calls[0];
    assert_eq!(c.field("Body"), Some(format!("Suite Shop: your order {short} has shipped. Tracking: DHL JD0001.").as_str()));
    assert_eq!(c.field("From"), Some(SMS_FROM));
    let basic = format!("Basic {}", STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}")));
    assert_eq!(c.headers.get("authorization"), Some(&basic));
    assert_eq!(c.path, format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"));
    assert!(c.headers.get("content-type").is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")));

    // The admin listing shows it as an SMS, beside the emails.
    let d = delivery_with_status(&app, &admin, &phone, "sent");
    assert_eq!(sms_deliveries(&app, &admin, &phone).len(), 1);
    assert_eq!(d["channel"], "sms");
    assert_eq!(d["idempotency_key"], format!("sms/order.shipped/{id}"));
    assert!(d["provider_id"].as_str().is_some_and(|s| s.starts_with("SM")));
    let emails = app.send_as(&admin.access_token, "GET", "/api/admin/notifications?channel=email&limit=100", None).json();
    assert!(emails["notifications"].as_array().unwrap().iter().all(|n| n["channel"] == "email"));
    sweep(&app);
    assert_eq!(app.twilio.to(&phone).len(), 1, "once");

    // A cancelled order texts too (a pending one here: no payment to refund).
    let (user2, phone2) = customer_with_phone(&app, true);
    place_and_cancel(&app, &user2);
    let body = sms_to(&app, &phone2, 1)[0].field("Body").unwrap().to_string();
    assert!(body.contains("was cancelled"), "{body}");
    assert!(app.twilio.to(&phone2).iter().all(|c| !c.field("Body").unwrap().contains("has shipped")));
}

#[test]
fn no_consent_no_sms() {
    let app = TestApp::get();
    let admin = app.admin();
    let (user, phone) = customer_with_phone(&app, false);
    let id = paid_order(&app, &user);
    app.send_as(&admin.access_token, "PUT", &format!("/api/orders/{id}/tracking"), Some(&json!({ "carrier": "UPS", "tracking_number": "1Z" })));
    sweep(&app);
    sweep(&app);
    assert!(app.twilio.to(&phone).is_empty());
    assert!(sms_deliveries(&app, &admin, &phone).is_empty());
}

#[test]
fn twilio_rate_limits_are_retried_and_bad_numbers_fail_for_good() {
    let app = TestApp::get();
    let admin = app.admin();
    // 429 with Retry-After, then a 503: both retried, with the same text.
    let (user, phone) = customer_with_phone(&app, true);
    app.twilio.script(&phone, &[(429, 20429, Some(1)), (503, 20503, None)]);
    place_and_cancel(&app, &user);
    sms_to(&app, &phone, 1);
    let d = delivery_with_status(&app, &admin, &phone, "pending");
    assert!(d["last_error"].as_str().unwrap().contains("429 Twilio error 20429"), "{d:?}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    sms_to(&app, &phone, 2);
    // The 503's backoff is 4 s after the second attempt.
    std::thread::sleep(std::time::Duration::from_millis(4100));
    let calls = sms_to(&app, &phone, 3);
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [429, 503, 201]);
    assert!(calls.windows(2).all(|w| w[0].field("Body") == w[1].field("Body")));
    assert_eq!(delivery_with_status(&app, &admin, &phone, "sent")["attempts"], 3);

    // 400 (invalid number): failed at once with Twilio's reason, never retried.
    let (user, phone) = customer_with_phone(&app, true);
    app.twilio.script(&phone, &[(400, 21211, None)]);
    place_and_cancel(&app, &user);
    sms_to(&app, &phone, 1);
    let d = delivery_with_status(&app, &admin, &phone, "failed");
    assert!(d["last_error"].as_str().unwrap().contains("21211"), "{d:?}");
    sweep(&app);
    assert_eq!(app.twilio.to(&phone).len(), 1);
}

#[test]
fn withdrawing_consent_stops_a_queued_sms() {
    let app = TestApp::get();
    let admin = app.admin();
    let (user, phone) = customer_with_phone(&app, true);
    app.twilio.script(&phone, &[(503, 20503, None)]);
    place_and_cancel(&app, &user);
    sms_to(&app, &phone, 1);
    delivery_with_status(&app, &admin, &phone, "pending");
    let r = app.send_as(&user.access_token, "DELETE", "/api/users/phone", None);
    assert_eq!(r.status, 200, "{}", r.body);
    // Past the 2 s backoff the retry is due, and is dropped instead of sent.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    sweep(&app);
    let d = delivery_with_status(&app, &admin, &phone, "failed");
    assert!(d["last_error"].as_str().unwrap().contains("withdrew SMS consent"), "{d:?}");
    assert_eq!(app.twilio.to(&phone).len(), 1, "no second attempt");
}

/// Without Twilio credentials, SMS go to the local log like email.
#[test]
fn without_twilio_sms_go_to_the_local_log() {
    if std::env::var("SHOP_BASE_URL").is_ok_and(|u| !u.is_empty()) {
        eprintln!("not applicable against SHOP_BASE_URL: the app there has Twilio credentials");
        return;
    }
    let keys = jwt_simple::prelude::Ed25519KeyPair::generate();
    let host = api_tests::launch_host(&keys, &[]);
    let app = TestApp::for_host(&host, keys);
    let health = app.get_path("/api/notifications/health").json();
    assert_eq!(health["delivery"]["sms_mode"], "local_log", "{health}");
    let admin = app.admin();
    let (user, phone) = customer_with_phone(&app, true);
    place_and_cancel(&app, &user);
    sweep(&app);
    delivery_with_status(&app, &admin, &phone, "logged");
    let log = std::fs::read_to_string(host.component_log_path("notifications")).unwrap_or_default();
    assert!(log.contains("sms_log") && log.contains(&phone), "the SMS is in the component log");
}

/// The SMS log in `user`'s data export.
fn exported_sms(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let r = app.send_as(&user.access_token, "GET", "/api/users/me/export", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["sms"].as_array().expect("the export lists SMS").clone()
}

/// Mallory enters Ann's number on her own account, with consent (nothing
/// verifies a number): Ann's order SMS are still Ann's alone. Mallory's
/// export does not list them, and deleting Mallory's account neither erases
/// Ann's SMS log nor stops Ann's queued SMS.
#[test]
fn another_account_with_the_same_number_never_reaches_its_owners_sms() {
    let app = TestApp::get();
    let admin = app.admin();
    let (ann, product) = app.customer_with_cart(5, 300, 1);
    let phone = unique_phone();
    assert_eq!(set_phone(&app, &ann, json!({ "phone": phone, "sms_consent": true })).status, 200);
    let mallory = app.register_customer();
    assert_eq!(set_phone(&app, &mallory, json!({ "phone": phone, "sms_consent": true })).status, 200);

    place_and_cancel(&app, &ann);
    sms_to(&app, &phone, 1);
    delivery_with_status(&app, &admin, &phone, "sent");
    let anns = exported_sms(&app, &ann);
    assert_eq!(anns.len(), 1, "{anns:?}");
    assert_eq!((anns[0]["event_type"].as_str(), anns[0]["subject"].as_str()), (Some("order.cancelled"), Some("SMS: Order cancelled")));
    assert_eq!(exported_sms(&app, &mallory), Vec::<Value>::new(), "Mallory's export holds none of Ann's SMS");

    // A second SMS of Ann's waits for its retry while Mallory deletes her account.
    app.twilio.script(&phone, &[(503, 20503, None)]);
    assert_eq!(app.add_to_cart(&mut Shopper::user(&ann.access_token), &product, 1).status, 200);
    place_and_cancel(&app, &ann);
    sms_to(&app, &phone, 2);
    delivery_with_status(&app, &admin, &phone, "pending");
    let r = app.send_as(&mallory.access_token, "DELETE", "/api/users/me", Some(&json!({ "password": mallory.password })));
    assert_eq!(r.status, 204, "{}", r.body);

    let kept = sms_deliveries(&app, &admin, &phone);
    assert_eq!(kept.len(), 2, "Ann's SMS log is not erased: {kept:?}");
    assert!(kept.iter().any(|d| d["status"] == "pending"), "nor is her queued SMS failed: {kept:?}");
    // Past the 2 s backoff the retry goes out.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let calls = sms_to(&app, &phone, 3);
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [201, 503, 201]);
    let both_sent = (0..100).any(|_| {
        let sent = sms_deliveries(&app, &admin, &phone).iter().all(|d| d["status"] == "sent");
        std::thread::sleep(std::time::Duration::from_millis(if sent { 0 } else { 50 }));
        sent
    });
    assert!(both_sent, "{:?}", sms_deliveries(&app, &admin, &phone));
    assert_eq!(exported_sms(&app, &ann).len(), 2);
}

/// Consent is the account's own: once Ann withdraws hers, her queued SMS
/// are not sent, although another account consents to SMS at the same
/// number.
#[test]
fn withdrawn_consent_is_not_overruled_by_another_account_with_the_same_number() {
    let app = TestApp::get();
    let admin = app.admin();
    let (ann, phone) = customer_with_phone(&app, true);
    let other = app.register_customer();
    assert_eq!(set_phone(&app, &other, json!({ "phone": phone, "sms_consent": true })).status, 200);
    app.twilio.script(&phone, &[(503, 20503, None)]);
    place_and_cancel(&app, &ann);
    sms_to(&app, &phone, 1);
    delivery_with_status(&app, &admin, &phone, "pending");
    let r = set_phone(&app, &ann, json!({ "phone": phone, "sms_consent": false }));
    assert_eq!(r.status, 200, "{}", r.body);
    // Past the 2 s backoff the retry is due, and is dropped instead of sent.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    sweep(&app);
    let d = delivery_with_status(&app, &admin, &phone, "failed");
    assert!(d["last_error"].as_str().unwrap().contains("withdrew SMS consent"), "{d:?}");
    assert_eq!(app.twilio.to(&phone).len(), 1, "no second attempt");
}
