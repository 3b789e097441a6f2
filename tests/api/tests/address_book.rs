//! The address book: saved addresses validated like an order's shipping
//! address, one default shipping address, private to their owner, and
//! checkout shipping to an entry by id (the order keeps a copy).

use api_tests::{TestApp, TestUser};
use serde_json::{json, Value};

fn home() -> Value {
    json!({ "label": "Home", "name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "us" })
}

fn add(app: &TestApp, user: &TestUser, body: &Value) -> Value {
    let r = app.send_as(&user.access_token, "POST", "/api/users/addresses", Some(body));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["address"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.header("location"), Some(format!("/api/users/addresses/{id}").as_str()));
    r.json()["address"].clone()
}

fn book(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let r = app.send_as(&user.access_token, "GET", "/api/users/addresses", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["addresses"].as_array().unwrap().clone()
}

#[test]
fn addresses_are_saved_normalised_and_the_first_is_the_default() {
    let app = TestApp::get();
    let user = app.register_customer();
    assert!(book(&app, &user).is_empty());
    let a = add(&app, &user, &home());
    assert_eq!((a["country"].as_str(), a["label"].as_str(), a["default_shipping"].as_bool()), (Some("US"), Some("Home"), Some(true)));
    let mut work = home();
    work["label"] = json!("Work");
    work["city"] = json!("Shelbyville");
    let b = add(&app, &user, &work);
    assert_eq!(b["default_shipping"], false);

    // A new default replaces the old one.
    let mut moved = work.clone();
    moved["default_shipping"] = json!(true);
    let r = app.send_as(&user.access_token, "PUT", &format!("/api/users/addresses/{}", b["id"].as_str().unwrap()), Some(&moved));
    assert_eq!(r.status, 200, "{}", r.body);
    let all = book(&app, &user);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["id"], b["id"], "the default comes first");
    assert_eq!(all.iter().filter(|e| e["default_shipping"] == true).count(), 1);

    let one = app.send_as(&user.access_token, "GET", &format!("/api/users/addresses/{}", a["id"].as_str().unwrap()), None);
    assert_eq!(one.json()["address"]["city"], "Springfield");
    let r = app.send_as(&user.access_token, "DELETE", &format!("/api/users/addresses/{}", a["id"].as_str().unwrap()), None);
    assert_eq!(r.status, 204);
    app.send_as(&user.access_token, "GET", &format!("/api/users/addresses/{}", a["id"].as_str().unwrap()), None).assert_error(404, "not_found");
}

#[test]
fn bad_addresses_get_every_problem_at_once() {
    let app = TestApp::get();
    let user = app.register_customer();
    let r = app.send_as(&user.access_token, "POST", "/api/users/addresses", Some(&json!({ "name": " ", "country": "USA", "label": "x".repeat(51) })));
    let v = r.assert_error(422, "validation_failed");
    let fields = v["error"]["details"]["fields"].as_object().unwrap();
    for f in ["name", "line1", "city", "postal_code", "country", "label"] {
        assert!(fields.contains_key(f), "{f}: {fields:?}");
    }
    app.send_as(&user.access_token, "POST", "/api/users/addresses", Some(&json!({ "street": "1 Main" }))).assert_error(400, "invalid_json");
    app.request("GET", "/api/users/addresses", &[], None).assert_error(401, "unauthorized");
    assert!(book(&app, &user).is_empty(), "nothing saved");
}

#[test]
fn nobody_sees_or_changes_another_users_addresses() {
    let app = TestApp::get();
    let owner = app.register_customer();
    let other = app.register_customer();
    let a = add(&app, &owner, &home());
    let path = format!("/api/users/addresses/{}", a["id"].as_str().unwrap());
    app.send_as(&other.access_token, "GET", &path, None).assert_error(404, "not_found");
    app.send_as(&other.access_token, "PUT", &path, Some(&home())).assert_error(404, "not_found");
    app.send_as(&other.access_token, "DELETE", &path, None).assert_error(404, "not_found");
    assert!(book(&app, &other).is_empty());
    assert_eq!(book(&app, &owner).len(), 1);
    // Nor ship an order there.
    let (buyer, _) = app.customer_with_cart(5, 500, 1);
    let r = app.place_order(&buyer, None, Some(json!({ "shipping_address_id": a["id"] })));
    let v = r.assert_error(422, "validation_failed");
    assert!(v["error"]["details"]["fields"]["shipping_address_id"].is_string());
}

#[test]
fn the_book_holds_twenty_and_concurrent_defaults_leave_one() {
    let app = TestApp::get();
    let user = app.register_customer();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let user = &user;
                s.spawn(move || {
                    let mut body = home();
                    body["label"] = json!(format!("No. {i}"));
                    body["default_shipping"] = json!(true);
                    app.send_as(&user.access_token, "POST", "/api/users/addresses", Some(&body)).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 4, "{statuses:?}");
    let all = book(&app, &user);
    assert_eq!(all.len(), 20);
    assert_eq!(all.iter().filter(|e| e["default_shipping"] == true).count(), 1);
    let r = app.send_as(&user.access_token, "POST", "/api/users/addresses", Some(&home()));
    r.assert_error(409, "address_book_full");
}

#[test]
fn checkout_ships_to_a_saved_address_and_keeps_its_own_copy() {
    let app = TestApp::get();
    let (user, _) = app.customer_with_cart(5, 900, 1);
    let mut body = home();
    body["line2"] = json!("Apt 4");
    let a = add(&app, &user, &body);
    let r = app.place_order(&user, None, Some(json!({ "shipping_address_id": a["id"] })));
    assert_eq!(r.status, 201, "{}", r.body);
    let order = r.json();
    assert_eq!(order["shipping_address"]["line2"], "Apt 4");
    assert_eq!(order["shipping_address"]["country"], "US");
    // Editing the entry later does not change the order.
    let mut changed = home();
    changed["city"] = json!("Capital City");
    let r = app.send_as(&user.access_token, "PUT", &format!("/api/users/addresses/{}", a["id"].as_str().unwrap()), Some(&changed));
    assert_eq!(r.status, 200);
    let id = order["id"].as_str().unwrap();
    assert_eq!(app.order(&user, id)["shipping_address"]["city"], "Springfield");

    // Both at once is refused.
    let (user2, _) = app.customer_with_cart(5, 900, 1);
    let b = add(&app, &user2, &home());
    let both = json!({ "shipping_address_id": b["id"], "shipping_address": home_inline() });
    app.place_order(&user2, None, Some(both)).assert_error(422, "validation_failed");
}

/// A retried placement (same Idempotency-Key, same body) gets its order
/// back even after the address-book entry it named is gone.
#[test]
fn a_retried_placement_is_replayed_after_its_saved_address_is_deleted() {
    let app = TestApp::get();
    let (user, _) = app.customer_with_cart(5, 900, 1);
    let a = add(&app, &user, &home());
    let id = a["id"].as_str().unwrap();
    let key = format!("place-{id}");
    let body = json!({ "shipping_address_id": id });
    let first = app.place_order(&user, Some(&key), Some(body.clone()));
    assert_eq!(first.status, 201, "{}", first.body);
    let r = app.send_as(&user.access_token, "DELETE", &format!("/api/users/addresses/{id}"), None);
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    let again = app.place_order(&user, Some(&key), Some(body));
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["id"], first.json()["id"]);
}

fn home_inline() -> Value {
    json!({ "name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US" })
}

#[test]
fn without_an_address_checkout_uses_the_default_shipping_address() {
    let app = TestApp::get();
    let (user, _) = app.customer_with_cart(5, 900, 1);
    let mut body = home();
    body["city"] = json!("Ogdenville");
    add(&app, &user, &body);
    let r = app.place_order(&user, None, None);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["shipping_address"]["city"], "Ogdenville");
    // An inline address still wins.
    let (user2, _) = app.customer_with_cart(5, 900, 1);
    add(&app, &user2, &body);
    let r = app.place_order(&user2, None, Some(json!({ "shipping_address": home_inline() })));
    assert_eq!(r.json()["shipping_address"]["city"], "Springfield");
}
