//! `GET /api/orders/all`: the admin console's listing of every customer's
//! orders, with status, date, order-id and customer filters.

use api_tests::{event, TestApp, TestUser};
use serde_json::{json, Value};

/// A new customer with one placed (unpaid) order of `quantity` units; returns the customer and the order.
fn customer_with_order(app: &TestApp, quantity: i64) -> (TestUser, Value) {
    let (user, _) = app.customer_with_cart(10, 1250, quantity);
    let r = app.place_order(&user, None, Some(json!({ "shipping_address": { "name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US" } })));
    assert_eq!(r.status, 201, "{}", r.body);
    (user, r.json())
}

fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app.send_as(token, "GET", &format!("/api/orders/all?{query}"), None);
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r.json()
}

fn ids(page: &Value) -> Vec<String> {
    page["orders"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn only_admins_list_every_order() {
    let app = TestApp::get();
    let customer = app.register_customer();
    app.send_as(&customer.access_token, "GET", "/api/orders/all", None).assert_error(403, "forbidden");
    app.get_path("/api/orders/all").assert_error(401, "unauthorized");
}

#[test]
fn admins_filter_by_customer_order_id_status_and_day() {
    let app = TestApp::get();
    let admin = app.admin();
    let (ann, first) = customer_with_order(&app, 1);
    // `created_at` has one-second resolution and orders placed in the same
    // second have no defined order: place the second one a second later.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (bob, second) = customer_with_order(&app, 2);
    let (first_id, second_id) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());
    let both = format!("user_id={},{}", ann.id, bob.id);

    // Both customers' orders, newest first, each naming its customer.
    let page = list(&app, &admin.access_token, &both);
    assert_eq!(ids(&page), vec![second_id, first_id]);
    assert_eq!(page["total"], 2);
    assert_eq!(page["orders"][0]["user_id"], bob.id.as_str());
    assert_eq!(page["orders"][1]["user_id"], ann.id.as_str());
    assert_eq!(page["orders"][0]["total"], json!({ "amount_minor": 2500, "currency": "USD" }));

    // One customer.
    assert_eq!(ids(&list(&app, &admin.access_token, &format!("user_id={}", ann.id))), vec![first_id]);
    // The start of an order id, in any case, or the whole id.
    assert_eq!(ids(&list(&app, &admin.access_token, &format!("order_id={}", &first_id[..8].to_uppercase()))), vec![first_id]);
    assert_eq!(ids(&list(&app, &admin.access_token, &format!("order_id={first_id}"))), vec![first_id]);

    // Status: pay Bob's order.
    let session = app.start_checkout(&bob, second_id);
    let paid = app.stripe.pay_session(&session);
    assert_eq!(app.stripe_sends(&event(&format!("evt_{second_id}_admin_list"), "checkout.session.completed", paid)).status, 200);
    assert_eq!(ids(&list(&app, &admin.access_token, &format!("{both}&status=paid"))), vec![second_id]);
    assert_eq!(ids(&list(&app, &admin.access_token, &format!("{both}&status=pending_payment"))), vec![first_id]);
    assert_eq!(list(&app, &admin.access_token, &format!("{both}&status=shipped"))["total"], 0);

    // The day placed (UTC), both ends inclusive.
    let day = first["created_at"].as_str().unwrap()[..10].to_string();
    assert_eq!(list(&app, &admin.access_token, &format!("{both}&created_from={day}&created_to={day}"))["total"], 2);
    assert_eq!(list(&app, &admin.access_token, &format!("{both}&created_to=2000-01-01"))["total"], 0);
    assert_eq!(list(&app, &admin.access_token, &format!("{both}&created_from=2999-01-01"))["total"], 0);

    // Pagination over the matches.
    let one = list(&app, &admin.access_token, &format!("{both}&limit=1&page=2"));
    assert_eq!((ids(&one), one["total"].as_i64(), one["limit"].as_i64()), (vec![first_id.to_string()], Some(2), Some(1)));

    // The customer's own listing is unchanged: theirs only, without user_id.
    let own = app.send_as(&ann.access_token, "GET", "/api/orders", None).json();
    assert_eq!(ids(&own), vec![first_id]);
    assert!(own["orders"][0].get("user_id").is_none());
}

#[test]
fn malformed_filters_are_named() {
    let app = TestApp::get();
    let admin = app.admin();
    for (query, parameter) in [
        ("status=bogus", "status"),
        ("created_from=2026-13-01", "created_from"),
        ("created_to=yesterday", "created_to"),
        ("order_id=ab%25", "order_id"),
        ("order_id=abc", "order_id"),
        ("user_id=a'b", "user_id"),
        ("status=paid&status=shipped", "status"),
    ] {
        let v = app.send_as(&admin.access_token, "GET", &format!("/api/orders/all?{query}"), None).assert_error(400, "invalid_parameter");
        assert_eq!(v["error"]["details"]["parameter"], parameter, "{query}");
    }
    let backwards = app.send_as(&admin.access_token, "GET", "/api/orders/all?created_from=2026-12-02&created_to=2026-12-01", None);
    assert_eq!(backwards.json()["total"], 0, "a range that ends before it starts matches nothing: {}", backwards.body);
    app.send_as(&admin.access_token, "GET", "/api/orders/all?status=", None).assert_error(400, "invalid_parameter");
    let many: Vec<String> = (0..21).map(|i| format!("u{i}")).collect();
    app.send_as(&admin.access_token, "GET", &format!("/api/orders/all?user_id={}", many.join(",")), None).assert_error(400, "invalid_parameter");
}
