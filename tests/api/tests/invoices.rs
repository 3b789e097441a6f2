//! Invoices and credit notes: issued with the payment and with each refund,
//! numbered without gaps or repeats also when many orders are paid at once,
//! shown to their owner (JSON and printable HTML) and listed for the books.

use api_tests::{event, TestApp, TestUser, SWEEP_SECRET};
use serde_json::{json, Value};

fn paid_order(app: &TestApp, price: i64, quantity: i64) -> (TestUser, String) {
    let (user, _) = app.customer_with_cart(50, price, quantity);
    let body = json!({ "shipping_address": { "name": "Ann <Lee>", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "us" } });
    let r = app.place_order(&user, Some(&api_tests::unique_email("inv")), Some(body));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let session = app.start_checkout(&user, &id);
    let r = app.stripe_sends(&event(&format!("evt_{id}_paid"), "checkout.session.completed", app.stripe.pay_session(&session)));
    assert_eq!(r.status, 200, "{}", r.body);
    (user, id)
}

fn invoice(app: &TestApp, user: &TestUser, id: &str) -> Value {
    let r = app.send_as(&user.access_token, "GET", &format!("/api/orders/{id}/invoice"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn year() -> String {
    let days = api_tests::now() / 86_400;
    // Civil year from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2)).to_string()
}

#[test]
fn a_paid_order_has_an_invoice_and_each_refund_a_credit_note() {
    let app = TestApp::get();
    let (user, id) = paid_order(&app, 1250, 2);
    let v = invoice(&app, &user, &id);
    let inv = &v["invoice"];
    let number = inv["number"].as_str().unwrap().to_string();
    assert!(number.starts_with(&format!("INV-{}-", year())) && number.len() == "INV-2026-000001".len(), "{number}");
    assert_eq!((inv["kind"].as_str(), inv["total"]["amount_minor"].as_i64(), inv["currency"].as_str()), (Some("invoice"), Some(2500), Some("USD")));
    let doc = &inv["document"];
    assert_eq!(doc["lines"][0]["quantity"], 2);
    assert_eq!(doc["buyer"]["billing_address"]["line1"], "1 Main St");
    assert_eq!(doc["tax"]["rate_bps"], 0, "no tax unless configured");
    assert_eq!((doc["net"]["amount_minor"].as_i64(), doc["tax_amount"]["amount_minor"].as_i64()), (Some(2500), Some(0)));
    assert_eq!(v["credit_notes"], json!([]));

    // The printable page: every value escaped, nothing loaded from elsewhere.
    let r = app.request("GET", &format!("/api/orders/{id}/invoice"), &[("authorization", &format!("Bearer {}", user.access_token)), ("accept", "text/html")], None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body.contains(&number) && r.body.contains("Ann &lt;Lee&gt;") && !r.body.contains("<Lee>"), "{}", r.body);
    assert!(r.header("content-security-policy").unwrap().contains("default-src 'none'"));

    // Nobody else sees it; an unpaid order has none.
    let stranger = app.register_customer();
    app.send_as(&stranger.access_token, "GET", &format!("/api/orders/{id}/invoice"), None).assert_error(404, "not_found");
    let (other, _) = app.customer_with_cart(5, 100, 1);
    let unpaid = app.place_order(&other, None, Some(json!({}))).json()["id"].as_str().unwrap().to_string();
    app.send_as(&other.access_token, "GET", &format!("/api/orders/{unpaid}/invoice"), None).assert_error(404, "no_invoice");

    // A partial refund, then the rest: two credit notes against the invoice.
    let admin = app.admin();
    for amount in [json!(500), Value::Null] {
        let r = app.send_as(&admin.access_token, "POST", "/api/payments/refund", Some(&json!({ "order_id": id, "amount": amount })));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let v = invoice(&app, &user, &id);
    let notes = v["credit_notes"].as_array().unwrap();
    assert_eq!(notes.iter().map(|n| n["total"]["amount_minor"].as_i64().unwrap()).collect::<Vec<_>>(), vec![500, 2000], "{v}");
    assert!(notes.iter().all(|n| n["invoice_number"] == number.as_str() && n["number"].as_str().unwrap().starts_with("CN-")));
    assert_eq!(v["invoice"], inv.clone(), "the invoice itself never changes");

    // The paid email links to it.
    for _ in 0..100 {
        if app.resend.to(&user.email).iter().any(|c| c.body["html"].as_str().unwrap_or("").contains(&number)) {
            return;
        }
        app.request("POST", "/api/notifications/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no paid email naming {number}: {:?}", app.resend.to(&user.email));
}

/// Many orders paid at once, with every other test paying and refunding
/// meanwhile: the numbers of each series this year are exactly 1 to the
/// highest, each once.
#[test]
fn numbers_have_no_gaps_and_no_repeats_under_concurrency() {
    let app = TestApp::get();
    let paid: Vec<(TestUser, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10).map(|_| s.spawn(|| paid_order(&app, 300, 1))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mine: Vec<String> = paid.iter().map(|(u, id)| invoice(&app, u, id)["invoice"]["number"].as_str().unwrap().to_string()).collect();
    let admin = app.admin();
    let y = year();
    let r = app.send_as(&admin.access_token, "GET", &format!("/api/orders/invoices?from={y}-01-01&to={y}-12-31&format=csv"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let mut rows = r.body.lines();
    assert_eq!(rows.next(), Some("number,kind,issued_on,order_id,credits_invoice,buyer,currency,net_minor,tax_minor,total_minor"));
    let numbers: Vec<String> = rows.map(|l| l.split(',').next().unwrap().to_string()).collect();
    for n in &mine {
        assert!(numbers.contains(n), "{n} is in the books");
    }
    for series in ["INV", "CN"] {
        let mut seq: Vec<u64> = numbers
            .iter()
            .filter_map(|n| n.strip_prefix(&format!("{series}-{y}-")))
            .map(|n| n.parse().unwrap())
            .collect();
        seq.sort();
        let expected: Vec<u64> = (1..=seq.len() as u64).collect();
        assert_eq!(seq, expected, "{series}: gapless and unique");
    }
}

#[test]
fn the_books_list_documents_by_period_for_admins_only() {
    let app = TestApp::get();
    let (user, id) = paid_order(&app, 700, 1);
    let number = invoice(&app, &user, &id)["invoice"]["number"].as_str().unwrap().to_string();
    let admin = app.admin();
    let y = year();
    let r = app.send_as(&admin.access_token, "GET", &format!("/api/orders/invoices?from={y}-01-01&to={y}-12-31&limit=100"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(v["total"].as_i64().unwrap() >= 1);
    let found = (1..=v["total"].as_i64().unwrap() / 100 + 1).flat_map(|page| {
        app.send_as(&admin.access_token, "GET", &format!("/api/orders/invoices?from={y}-01-01&to={y}-12-31&limit=100&page={page}"), None).json()["documents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    });
    assert!(found.into_iter().any(|d| d["number"] == number.as_str()));
    app.send_as(&user.access_token, "GET", &format!("/api/orders/invoices?from={y}-01-01&to={y}-12-31"), None).assert_error(403, "forbidden");
    app.send_as(&admin.access_token, "GET", "/api/orders/invoices?from=2026-13-01&to=2026-12-31", None).assert_error(400, "invalid_parameter");
    app.send_as(&admin.access_token, "GET", "/api/orders/invoices?to=2026-12-31", None).assert_error(400, "invalid_parameter");
    let backwards = app.send_as(&admin.access_token, "GET", "/api/orders/invoices?from=2026-12-31&to=2026-01-01", None).json();
    assert_eq!(backwards["total"], 0, "a period that ends before it starts holds nothing");
    app.send_as(&admin.access_token, "GET", &format!("/api/orders/invoices?from={y}-01-01&to={y}-12-31&format=xml"), None).assert_error(400, "invalid_parameter");
    let none = app.send_as(&admin.access_token, "GET", "/api/orders/invoices?from=1999-01-01&to=1999-12-31", None).json();
    assert_eq!((none["total"].as_i64(), none["documents"].as_array().map(Vec::len)), (Some(0), Some(0)));
}
