//! Promotional email with consent: opt-in (never assumed, timestamped, in
//! the export), an admin promotion through the outbox in paced Resend
//! batches, each email with a signed one-click unsubscribe link and the
//! RFC 8058 headers, and an unsubscribe that needs no sign-in, stops every
//! later promotion and leaves transactional email alone.

use api_tests::fake_resend::EmailCall;
use api_tests::{TestApp, TestUser, STRONG_PASSWORD, SWEEP_SECRET};
use serde_json::{json, Value};

fn sweep(app: &TestApp) {
    let r = app.request("POST", "/api/notifications/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
    assert_eq!(r.status, 200, "{}", r.body);
}

fn opt_in(app: &TestApp, user: &TestUser, consent: bool) -> Value {
    let r = app.send_as(&user.access_token, "PUT", "/api/users/marketing-consent", Some(&json!({ "consent": consent })));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn send_promotion(app: &TestApp, admin: &TestUser, subject: &str) -> Value {
    let r = app.send_as(&admin.access_token, "POST", "/api/admin/promotions", Some(&json!({
        "subject": subject, "html": "<h1>Winter sale</h1><p>Everything 20% off.</p>", "text": "Winter sale: everything 20% off.",
    })));
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()
}

/// The promotional emails with `subject` to `email`, once `n` arrived
/// (sweeping meanwhile: batches are paced one per second).
fn promotions_to(app: &TestApp, email: &str, subject: &str, n: usize) -> Vec<EmailCall> {
    for _ in 0..80 {
        let calls: Vec<EmailCall> = app.resend.to(email).into_iter().filter(|c| c.body["subject"] == subject).collect();
        if calls.len() >= n {
            return calls;
        }
        sweep(app);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("promotion {subject:?} never reached {email}");
}

/// The unsubscribe URL of an email's `List-Unsubscribe` header, as a path.
fn unsubscribe_path(app: &TestApp, call: &EmailCall) -> String {
    let header = call.body["headers"]["List-Unsubscribe"].as_str().expect("List-Unsubscribe header");
    let url = header.trim_start_matches('<').trim_end_matches('>');
    let path = &url[url.find("/api/").expect("an API URL")..];
    assert!(!path.is_empty() && app.base_url().starts_with("http"));
    path.to_string()
}

#[test]
fn consent_is_opt_in_timestamped_and_exported() {
    let app = TestApp::get();
    let user = app.register_customer();
    let me = app.send_as(&user.access_token, "GET", "/api/users/profile", None).json();
    assert!(me["user"]["marketing_consent_at"].is_null(), "never pre-ticked");
    let at = opt_in(&app, &user, true)["user"]["marketing_consent_at"].as_str().expect("timestamped").to_string();
    assert_eq!(opt_in(&app, &user, true)["user"]["marketing_consent_at"], at.as_str(), "opting in again keeps the time");
    let export = app.send_as(&user.access_token, "GET", "/api/users/me/export", None).json();
    assert_eq!((export["consent"]["marketing_email"].as_bool(), export["consent"]["marketing_email_given_at"].as_str()), (Some(true), Some(at.as_str())));
    assert!(opt_in(&app, &user, false)["user"]["marketing_consent_at"].is_null());
    app.send_as(&user.access_token, "PUT", "/api/users/marketing-consent", Some(&json!({}))).assert_error(400, "invalid_json");
    app.send_as(&user.access_token, "PUT", "/api/users/marketing-consent", Some(&json!({ "consent": "yes" }))).assert_error(400, "invalid_json");
    app.request("PUT", "/api/users/marketing-consent", &[], Some(&json!({ "consent": true }))).assert_error(401, "unauthorized");
}

#[test]
fn promotions_reach_consenting_customers_with_a_one_click_unsubscribe() {
    let app = TestApp::get();
    let admin = app.admin();
    let fan = app.register_customer();
    app.verify_email(&fan.email);
    opt_in(&app, &fan, true);
    let quiet = app.register_customer();
    // Consent from an account whose address was never confirmed is not the
    // address owner's (anyone can register someone else's address).
    let unconfirmed = app.register_customer();
    opt_in(&app, &unconfirmed, true);
    let subject = format!("Winter sale {}", api_tests::unique_email("s"));
    let sent = send_promotion(&app, &admin, &subject);
    assert!(sent["recipients"].as_i64().unwrap() >= 1, "{sent}");

    let call = promotions_to(&app, &fan.email, &subject, 1).remove(0);
    assert!(call.body["html"].as_str().unwrap().starts_with("<h1>Winter sale</h1>"));
    assert_eq!(call.body["headers"]["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
    let path = unsubscribe_path(&app, &call);
    assert!(call.body["text"].as_str().unwrap().contains(&path), "the body links to it too");
    assert!(call.idempotency_key().starts_with("promotions/"), "sent as a batch: {}", call.idempotency_key());
    sweep(&app);
    assert!(app.resend.to(&quiet.email).iter().all(|c| c.body["subject"] != subject), "no consent, no promotion");
    assert!(app.resend.to(&unconfirmed.email).iter().all(|c| c.body["subject"] != subject), "an unconfirmed address gets none");
    assert_eq!(app.resend.to(&fan.email).iter().filter(|c| c.body["subject"] == subject).count(), 1, "once");

    // A forged or altered link does nothing.
    let last = if path.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &path[..path.len() - 1]);
    assert_ne!(forged, path);
    app.request_raw("POST", &forged, &[], Vec::new()).assert_error(400, "invalid_unsubscribe_link");
    app.request_raw("POST", &format!("/api/users/unsubscribe?user={}&sig=00", quiet.id), &[], Vec::new()).assert_error(400, "invalid_unsubscribe_link");
    // GET only shows a page (link scanners unsubscribe nobody).
    let page = app.get_path(&path);
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")) && page.body.contains("<form method=\"post\""));
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let me = app.send_as(&fan.access_token, "GET", "/api/users/profile", None).json();
    assert!(me["user"]["marketing_consent_at"].is_string(), "still subscribed after a GET");

    // One click, as a mail client sends it (RFC 8058), without signing in.
    let r = app.request_raw("POST", &path, &[("content-type", "application/x-www-form-urlencoded")], b"List-Unsubscribe=One-Click".to_vec());
    assert_eq!(r.status, 200, "{}", r.body);
    let me = app.send_as(&fan.access_token, "GET", "/api/users/profile", None).json();
    assert!(me["user"]["marketing_consent_at"].is_null());
    assert_eq!(app.request_raw("POST", &path, &[], Vec::new()).status, 200, "idempotent");

    // Every later promotion skips them; transactional email still arrives.
    let later = format!("{subject} (later)");
    send_promotion(&app, &admin, &later);
    let r = app.send_as(&fan.access_token, "PUT", "/api/users/password", Some(&json!({ "current_password": STRONG_PASSWORD, "new_password": "another fine passphrase" })));
    assert_eq!(r.status, 204);
    for _ in 0..30 {
        sweep(&app);
        if app.resend.to(&fan.email).iter().any(|c| c.idempotency_key().starts_with("user.password_changed/")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    sweep(&app);
    let fan_mail = app.resend.to(&fan.email);
    assert!(fan_mail.iter().any(|c| c.idempotency_key().starts_with("user.password_changed/")), "transactional email is unaffected");
    assert!(fan_mail.iter().all(|c| c.body["subject"] != later.as_str()), "unsubscribed: no later promotion");
}

#[test]
fn batches_are_paced_under_resends_rate_limit() {
    let app = TestApp::get();
    let admin = app.admin();
    let fans: Vec<TestUser> = (0..3).map(|_| app.register_customer()).collect();
    for f in &fans {
        app.verify_email(&f.email);
        opt_in(&app, f, true);
    }
    // Each promotion is sent right after the previous one arrived: without
    // pacing its batch would follow at once (the admin request nudges the
    // sender).
    for n in 0..3 {
        let subject = format!("Paced {n} {}", fans[0].email);
        send_promotion(&app, &admin, &subject);
        for f in &fans {
            promotions_to(&app, &f.email, &subject, 1);
        }
    }
    let batches = app.resend.batches();
    assert!(batches.len() >= 3, "{batches:?}");
    assert!(batches.iter().all(|(_, size)| *size <= 100));
    for pair in batches.windows(2) {
        let gap = pair[1].0.duration_since(pair[0].0);
        assert!(gap >= std::time::Duration::from_millis(950), "batches {gap:?} apart: at most one per second");
    }
}

/// Found in review: one email of a batch that Resend would not create (an
/// address it refuses) failed the whole batch of 100 for good. The batch
/// goes with permissive validation: that email fails alone.
#[test]
fn an_address_resend_refuses_fails_alone_and_the_rest_of_the_batch_goes_out() {
    let app = TestApp::get();
    let admin = app.admin();
    let fans: Vec<TestUser> = (0..3)
        .map(|_| {
            let u = app.register_customer();
            app.verify_email(&u.email);
            opt_in(&app, &u, true);
            u
        })
        .collect();
    app.resend.refuse_in_batches(&fans[1].email);
    let subject = format!("Batch with a refused address {}", fans[0].email);
    send_promotion(&app, &admin, &subject);
    promotions_to(&app, &fans[0].email, &subject, 1);
    promotions_to(&app, &fans[2].email, &subject, 1);
    let refused: Vec<EmailCall> = app.resend.to(&fans[1].email).into_iter().filter(|c| c.body["subject"] == subject).collect();
    assert!(!refused.is_empty() && refused.iter().all(|c| c.status == 422), "{:?}", refused.iter().map(|c| c.status).collect::<Vec<_>>());
}

#[test]
fn only_admins_send_promotions_and_content_is_checked() {
    let app = TestApp::get();
    let admin = app.admin();
    let customer = app.register_customer();
    let body = json!({ "subject": "S", "html": "<p>x</p>", "text": "x" });
    app.send_as(&customer.access_token, "POST", "/api/admin/promotions", Some(&body)).assert_error(403, "forbidden");
    app.request("POST", "/api/admin/promotions", &[], Some(&body)).assert_error(401, "unauthorized");
    let v = app
        .send_as(&admin.access_token, "POST", "/api/admin/promotions", Some(&json!({ "subject": " ", "html": "", "text": "x" })))
        .assert_error(422, "validation_failed");
    assert!(v["error"]["details"]["fields"]["subject"].is_string() && v["error"]["details"]["fields"]["html"].is_string(), "{v}");
    app.send_as(&admin.access_token, "POST", "/api/admin/promotions", Some(&json!({ "subject": "S" }))).assert_error(400, "invalid_json");
}
