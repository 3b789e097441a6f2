//! Carts: guests and users, live pricing, validation, merging, expiry,
//! isolation and concurrent changes.

use api_tests::{unique_sku, Shopper, TestApp, GUEST_CART_TTL};
use serde_json::{json, Value};

fn product(app: &TestApp, name: &str, stock: i64, price: i64, currency: &str) -> String {
    let admin = app.admin();
    let r = app.create_product(&admin, json!({
        "sku": unique_sku("cart"), "name": name,
        "price": { "amount_minor": price, "currency": currency }, "stock_on_hand": stock,
    }));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

fn line<'a>(cart: &'a Value, id: &str) -> &'a Value {
    cart["lines"].as_array().unwrap().iter().find(|l| l["product_id"] == id).unwrap_or(&Value::Null)
}

#[test]
fn a_guest_fills_and_empties_a_cart() {
    let app = TestApp::get();
    let lamp = product(&app, "Desk Lamp", 10, 2500, "USD");
    let bulb = product(&app, "Bulb", 10, 399, "USD");
    let mut guest = Shopper::guest();

    let empty = app.get_cart(&mut guest);
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json()["item_count"], 0);
    assert!(empty.header("x-cart-token").is_none(), "no token until the first change");

    let r = app.add_to_cart(&mut guest, &lamp, 2);
    assert_eq!(r.status, 200, "{}", r.body);
    let token = guest.cart_token.clone().expect("a token on first use");
    assert!(token.starts_with("ct_") && token.len() > 40);
    app.add_to_cart(&mut guest, &bulb, 3);
    let again = app.add_to_cart(&mut guest, &lamp, 1).json();
    assert_eq!(line(&again, &lamp)["quantity"], 3, "adding again adds up");

    let cart = app.get_cart(&mut guest).json();
    let l = line(&cart, &lamp);
    assert_eq!(l["name"], "Desk Lamp");
    assert_eq!(l["unit_price"], json!({ "amount_minor": 2500, "currency": "USD" }));
    assert_eq!(l["line_total"], json!({ "amount_minor": 7500, "currency": "USD" }));
    assert_eq!(l["available"], 10);
    assert_eq!(l["status"], "ok");
    assert_eq!(cart["subtotal"], json!({ "amount_minor": 7500 + 3 * 399, "currency": "USD" }));
    assert_eq!((cart["currency"].as_str(), cart["item_count"].as_i64(), cart["has_issues"].as_bool()), (Some("USD"), Some(6), Some(false)));
    assert_eq!(guest.cart_token.as_deref(), Some(token.as_str()), "the token stays the same");
    // The change priced the lamp from the look-up its stock check made and
    // the bulb from a new one: the same answer as a read.
    assert_eq!(again, cart, "a line change answers the whole cart, priced as a read prices it");

    let set = app.set_cart_quantity(&mut guest, &lamp, 1).json();
    assert_eq!(line(&set, &lamp)["quantity"], 1);
    let removed = app.remove_from_cart(&mut guest, &bulb).json();
    assert!(line(&removed, &bulb).is_null());
    app.remove_from_cart(&mut guest, &bulb).assert_error(404, "not_in_cart");
    assert_eq!(app.clear_cart(&mut guest).status, 204);
    assert_eq!(app.get_cart(&mut guest).json()["item_count"], 0);
}

#[test]
fn every_validation_rule() {
    let app = TestApp::get();
    let cheap = product(&app, "Pencil", 3, 100, "USD");
    let euro = product(&app, "Croissant Tin", 10, 900, "EUR");
    let mut guest = Shopper::guest();
    app.add_to_cart(&mut guest, &cheap, 1);

    for q in [0, -1, 100] {
        app.add_to_cart(&mut guest, &cheap, q).assert_error(422, "validation_failed");
    }
    app.request("POST", "/api/cart/items", &[], Some(&json!({ "product_id": cheap, "quantity": 1.5 }))).assert_error(400, "invalid_json");
    app.request("POST", "/api/cart/items", &[], Some(&json!({ "product_id": cheap, "quantity": 1, "price": 1 }))).assert_error(400, "invalid_json");
    app.add_to_cart(&mut guest, "not-a-uuid", 1).assert_error(422, "validation_failed");
    app.add_to_cart(&mut guest, "00000000-0000-4000-8000-000000000000", 1).assert_error(404, "product_not_found");
    app.add_to_cart(&mut guest, "a0000000-0000-4000-8000-000000000020", 1).assert_error(422, "product_inactive");
    let v = app.add_to_cart(&mut guest, &cheap, 3).assert_error(422, "insufficient_stock");
    assert_eq!(v["error"]["details"]["available"], 3);
    let v = app.add_to_cart(&mut guest, &euro, 1).assert_error(422, "currency_mismatch");
    assert_eq!((v["error"]["details"]["cart_currency"].as_str(), v["error"]["details"]["product_currency"].as_str()), (Some("USD"), Some("EUR")));
    app.set_cart_quantity(&mut guest, &cheap, 100).assert_error(422, "validation_failed");

    let plenty = product(&app, "Paper Clip", 500, 5, "USD");
    app.add_to_cart(&mut guest, &plenty, 99);
    app.add_to_cart(&mut guest, &plenty, 1).assert_error(422, "quantity_limit");
    let cart = app.get_cart(&mut guest).json();
    assert_eq!((line(&cart, &cheap)["quantity"].as_i64(), line(&cart, &plenty)["quantity"].as_i64()), (Some(1), Some(99)), "refusals changed nothing");

    app.request("GET", "/api/cart", &[("x-cart-token", "forged")], None).assert_error(400, "invalid_parameter");
}

#[test]
fn tokens_are_only_ever_issued_by_the_server() {
    let app = TestApp::get();
    let p = product(&app, "Mug", 10, 1200, "USD");
    let made_up = format!("ct_{}", "A".repeat(43));
    let mut guest = Shopper { access_token: None, cart_token: Some(made_up.clone()) };
    let r = app.get_cart(&mut guest);
    assert_eq!(r.json()["item_count"], 0);
    app.add_to_cart(&mut guest, &p, 1);
    assert_ne!(guest.cart_token.as_deref(), Some(made_up.as_str()), "an unknown token is replaced, not adopted");
}

#[test]
fn prices_are_live_and_inactive_products_are_flagged() {
    let app = TestApp::get();
    let admin = app.admin();
    let p = product(&app, "Kettle", 10, 3000, "USD");
    let q = product(&app, "Teapot", 10, 2000, "USD");
    let mut guest = Shopper::guest();
    app.add_to_cart(&mut guest, &p, 2);
    app.add_to_cart(&mut guest, &q, 1);

    app.send_as(&admin.access_token, "PUT", &format!("/api/products/{p}"), Some(&json!({ "price": { "amount_minor": 2750, "currency": "USD" }, "name": "Kettle Pro" })));
    let cart = app.get_cart(&mut guest).json();
    assert_eq!(line(&cart, &p)["unit_price"]["amount_minor"], 2750);
    assert_eq!(line(&cart, &p)["name"], "Kettle Pro");
    assert_eq!(cart["subtotal"]["amount_minor"], 2 * 2750 + 2000);

    app.send_as(&admin.access_token, "PUT", &format!("/api/products/{q}"), Some(&json!({ "active": false })));
    app.send_as(&admin.access_token, "PUT", &format!("/api/products/{p}/inventory"), Some(&json!({ "stock_on_hand": 1 })));
    let cart = app.get_cart(&mut guest).json();
    assert_eq!(line(&cart, &q)["status"], "inactive", "flagged, not dropped");
    assert_eq!(line(&cart, &p)["status"], "insufficient_stock");
    assert_eq!(line(&cart, &p)["available"], 1);
    assert_eq!(cart["has_issues"], true);
    assert_eq!(cart["subtotal"]["amount_minor"], 0, "flagged lines are not in the subtotal");
}

#[test]
fn signing_in_merges_the_guest_cart() {
    let app = TestApp::get();
    let a = product(&app, "Notebook", 4, 500, "USD");
    let b = product(&app, "Pen", 10, 150, "USD");
    let user = app.register_customer();
    let mut me = Shopper::user(&user.access_token);
    app.add_to_cart(&mut me, &a, 1);

    let mut guest = Shopper::guest();
    app.add_to_cart(&mut guest, &a, 3);
    app.add_to_cart(&mut guest, &b, 2);

    let mut signed_in = Shopper { access_token: Some(user.access_token.clone()), cart_token: guest.cart_token.clone() };
    let r = app.get_cart(&mut signed_in);
    assert_eq!(r.status, 200, "{}", r.body);
    let cart = r.json();
    assert_eq!(line(&cart, &a)["quantity"], 4, "1 + 3, within stock");
    assert_eq!(line(&cart, &b)["quantity"], 2);
    assert_eq!(cart["merged_guest_cart"]["merged"], 2);
    assert!(r.header("x-cart-token").is_none(), "a signed-in cart needs no token");

    // The guest cart is gone, and merging again adds nothing.
    assert_eq!(app.get_cart(&mut guest).json()["item_count"], 0);
    let again = app.get_cart(&mut signed_in).json();
    assert_eq!(line(&again, &a)["quantity"], 4);

    // An add with the merged cart's token (another tab, racing the sign-in)
    // starts a new guest cart under a new token, never the merged one,
    // which nobody would merge again; the next signed-in request carrying
    // the new token merges it.
    let merged_token = guest.cart_token.clone();
    let mut late_tab = Shopper { access_token: None, cart_token: merged_token.clone() };
    app.add_to_cart(&mut late_tab, &b, 1);
    assert!(late_tab.cart_token.is_some() && late_tab.cart_token != merged_token, "a new guest cart");
    let mut signed_in = Shopper { access_token: Some(user.access_token.clone()), cart_token: late_tab.cart_token.clone() };
    let cart = app.get_cart(&mut signed_in).json();
    assert_eq!(cart["merged_guest_cart"]["merged"], 1, "{cart}");
    assert_eq!(line(&cart, &b)["quantity"], 3);

    // The user's cart follows them to another device (another sign-in).
    let other_device = app.sign_in(&user.email, &user.password);
    let there = app.get_cart(&mut Shopper::user(&other_device.access_token)).json();
    assert_eq!(there["item_count"], 7);
}

#[test]
fn carts_are_isolated() {
    let app = TestApp::get();
    let p = product(&app, "Private Thing", 10, 100, "USD");
    let alice = app.register_customer();
    let bob = app.register_customer();
    app.add_to_cart(&mut Shopper::user(&alice.access_token), &p, 2);
    assert_eq!(app.get_cart(&mut Shopper::user(&bob.access_token)).json()["item_count"], 0);
    let mut guest = Shopper::guest();
    app.add_to_cart(&mut guest, &p, 1);
    assert_eq!(app.get_cart(&mut Shopper::guest()).json()["item_count"], 0, "no token, no cart");
    assert_eq!(app.get_cart(&mut Shopper::user(&alice.access_token)).json()["item_count"], 2);
    app.request("GET", "/api/cart", &[("authorization", "Bearer forged")], None).assert_error(401, "unauthorized");
}

#[test]
fn guest_carts_expire_after_inactivity() {
    let app = TestApp::get();
    assert_eq!(GUEST_CART_TTL, "8s", "the suite runs the app with guest_cart_idle_ttl=8s");
    let p = product(&app, "Ice Cube Tray", 10, 300, "USD");
    let q = product(&app, "Ice Cream Scoop", 10, 500, "USD");
    let mut guest = Shopper::guest();
    app.add_to_cart(&mut guest, &p, 1);
    app.add_to_cart(&mut guest, &q, 2);
    assert_eq!(app.get_cart(&mut guest).json()["item_count"], 3);
    std::thread::sleep(std::time::Duration::from_secs(9));
    assert_eq!(app.get_cart(&mut guest).json()["item_count"], 0, "expired");
    // Removing a line of it (a stale tab) finds nothing to remove, and does
    // not bring the other lines back (found in review: it wrote them back).
    app.remove_from_cart(&mut guest, &p).assert_error(404, "not_in_cart");
    assert_eq!(app.get_cart(&mut guest).json()["item_count"], 0, "still expired, nothing revived");
    // A signed-in user's cart does not expire.
    let user = app.register_customer();
    app.add_to_cart(&mut Shopper::user(&user.access_token), &p, 1);
}

#[test]
fn concurrent_changes_to_one_cart_are_all_kept() {
    let app = TestApp::get();
    let shared = product(&app, "Popular", 500, 100, "USD");
    let others: Vec<String> = (0..6).map(|i| product(&app, &format!("Other {i}"), 50, 100, "USD")).collect();
    let user = app.register_customer();
    let token = user.access_token.clone();
    let mut handles = Vec::new();
    for i in 0..12 {
        let (token, shared, other, n) = (token.clone(), shared.clone(), others[i % others.len()].clone(), others.len());
        handles.push(std::thread::spawn(move || {
            let app = TestApp::get();
            let mut me = Shopper::user(&token);
            let a = app.add_to_cart(&mut me, &shared, 1).status;
            let b = if i < n { app.add_to_cart(&mut me, &other, 1).status } else { 200 };
            (a, b)
        }));
    }
    for h in handles {
        let (a, b) = h.join().unwrap();
        assert_eq!((a, b), (200, 200));
    }
    let cart = app.get_cart(&mut Shopper::user(&token)).json();
    assert_eq!(line(&cart, &shared)["quantity"], 12, "no add was lost");
    for o in &others {
        assert_eq!(line(&cart, o)["quantity"], 1);
    }
}
