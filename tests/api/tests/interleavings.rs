//! Stock and orders always agree, whatever happens to the orders at once:
//! a seeded random mix of payments (by webhook, by the success page, twice,
//! after a declined card, as the hold lapses), cancellations, payments
//! racing cancellations and orders left to expire, all running concurrently
//! on one scarce product.
//! Afterwards, once every hold has lapsed: nothing is reserved, the units
//! gone from stock are exactly those of the orders that were paid, and
//! each order keeps at Stripe exactly its total if it ended paid and
//! nothing otherwise.
//!
//! The seed is printed; `SHOP_INTERLEAVING_SEED=<n>` replays a run's choices.

use api_tests::{event, unique_email, Rng, Shopper, TestApp, TestUser, SWEEP_SECRET, UNPAID_ORDER_TTL_SECS};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
enum Plan {
    PayByWebhook,
    PayTwice,
    PayOnReturnAndWebhookAtOnce,
    DeclineThenPay,
    Cancel,
    PayAndCancelAtOnce,
    LetExpire,
    /// Pay through the Payment Element just as the hold lapses, while the
    /// order is read (lazy expiry): paid, or expired and then honoured or
    /// refunded, never both kept and released.
    PayAsTheHoldLapses,
}

const PLANS: [Plan; 8] = [
    Plan::PayByWebhook,
    Plan::PayTwice,
    Plan::PayOnReturnAndWebhookAtOnce,
    Plan::DeclineThenPay,
    Plan::Cancel,
    Plan::PayAndCancelAtOnce,
    Plan::LetExpire,
    Plan::PayAsTheHoldLapses,
];

fn stock(app: &TestApp, admin: &TestUser, product: &str) -> (i64, i64, i64) {
    let v = app.send_as(&admin.access_token, "GET", &format!("/api/products/{product}"), None).json();
    (v["on_hand"].as_i64().unwrap(), v["reserved"].as_i64().unwrap(), v["available"].as_i64().unwrap())
}

fn carry_out(app: &TestApp, user: &TestUser, order_id: &str, plan: Plan) {
    let session = || {
        let r = app.send_as(&user.access_token, "POST", "/api/payments/checkout-session", Some(&json!({ "order_id": order_id })));
        r.json()["id"].as_str().map(str::to_string)
    };
    let pay = |session: &str, suffix: &str| {
        let paid = app.stripe.pay_session(session);
        app.stripe_sends(&event(&format!("evt_{order_id}_{suffix}"), "checkout.session.completed", paid));
    };
    let cancel = || app.send_as(&user.access_token, "POST", &format!("/api/orders/{order_id}/cancel"), None);
    match plan {
        Plan::PayByWebhook => {
            if let Some(s) = session() {
                pay(&s, "paid");
            }
        }
        Plan::PayTwice => {
            if let Some(s) = session() {
                std::thread::scope(|t| {
                    t.spawn(|| pay(&s, "twice"));
                    t.spawn(|| pay(&s, "twice"));
                });
            }
        }
        Plan::PayOnReturnAndWebhookAtOnce => {
            if let Some(s) = session() {
                app.stripe.pay_session(&s);
                std::thread::scope(|t| {
                    t.spawn(|| pay(&s, "webhook"));
                    t.spawn(|| app.send_as(&user.access_token, "GET", &format!("/api/payments/checkout-session/{s}"), None));
                });
            }
        }
        Plan::DeclineThenPay => {
            let r = app.send_as(&user.access_token, "POST", "/api/payments/create-intent", Some(&json!({ "order_id": order_id })));
            if let Some(intent) = r.json()["id"].as_str() {
                let declined = json!({ "id": intent, "object": "payment_intent", "status": "requires_payment_method", "metadata": { "order_id": order_id } });
                app.stripe_sends(&event(&format!("evt_{order_id}_declined"), "payment_intent.payment_failed", declined));
                let ok = app.stripe.pay_intent(intent);
                app.stripe_sends(&event(&format!("evt_{order_id}_second_card"), "payment_intent.succeeded", ok));
            }
        }
        Plan::Cancel => {
            cancel();
        }
        Plan::PayAndCancelAtOnce => {
            if let Some(s) = session() {
                std::thread::scope(|t| {
                    t.spawn(|| pay(&s, "raced"));
                    t.spawn(cancel);
                });
            }
        }
        Plan::LetExpire => {}
        Plan::PayAsTheHoldLapses => {
            let r = app.send_as(&user.access_token, "POST", "/api/payments/create-intent", Some(&json!({ "order_id": order_id })));
            if let Some(intent) = r.json()["id"].as_str() {
                let ttl: u64 = UNPAID_ORDER_TTL_SECS.parse().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(ttl * 1000 - 300));
                let ok = app.stripe.pay_intent(intent);
                let evt = event(&format!("evt_{order_id}_lapsing"), "payment_intent.succeeded", ok);
                std::thread::scope(|t| {
                    t.spawn(|| app.stripe_sends(&evt));
                    t.spawn(|| {
                        std::thread::sleep(std::time::Duration::from_millis(300));
                        app.send_as(&user.access_token, "GET", &format!("/api/orders/{order_id}"), None)
                    });
                });
            }
        }
    }
}

#[test]
fn stock_and_orders_agree_after_any_interleaving() {
    let app = TestApp::get();
    let seed: u64 = std::env::var("SHOP_INTERLEAVING_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    eprintln!("interleavings: SHOP_INTERLEAVING_SEED={seed}");
    let mut rng = Rng::new(seed);
    let admin = app.admin();
    const STOCK: i64 = 12;
    let product = app.new_product(&admin, "Contended Widget", STOCK)["id"].as_str().unwrap().to_string();
    app.send_as(&admin.access_token, "PUT", &format!("/api/products/{product}"), Some(&json!({ "price": { "amount_minor": 500, "currency": "USD" } })));

    // Up to 14 customers want 1 unit each of 12: some orders are refused
    // for stock, which is part of the mix.
    let customers: Vec<(TestUser, Plan)> = (0..14)
        .map(|_| {
            let email = unique_email("interleave");
            app.register(json!({ "email": email, "password": api_tests::STRONG_PASSWORD, "first_name": "I", "last_name": "L" }));
            let user = app.sign_in(&email, api_tests::STRONG_PASSWORD);
            app.add_to_cart(&mut Shopper::user(&user.access_token), &product, 1);
            (user, PLANS[rng.below(PLANS.len())])
        })
        .collect();
    let placed: Vec<(usize, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = customers
            .iter()
            .enumerate()
            .map(|(i, (user, _))| {
                s.spawn(move || {
                    let r = app.place_order(user, None, None);
                    (i, if r.status == 201 { r.json()["id"].as_str().map(str::to_string) } else { None })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let orders: Vec<(usize, String)> = placed.into_iter().filter_map(|(i, id)| id.map(|id| (i, id))).collect();
    assert_eq!(orders.len() as i64, STOCK.min(14), "exactly the stock was ordered");
    let plans: Vec<Plan> = orders.iter().map(|(i, _)| customers[*i].1).collect();
    eprintln!("interleavings: plans {plans:?}");

    // Everything at once.
    std::thread::scope(|s| {
        for (i, id) in &orders {
            let (user, plan) = (&customers[*i].0, customers[*i].1);
            s.spawn(move || carry_out(app, user, id, plan));
        }
    });

    // Every hold lapses; the sweep expires what is left unpaid.
    let ttl: u64 = UNPAID_ORDER_TTL_SECS.parse().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(ttl + 2));
    let r = app.request("POST", "/api/orders/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
    assert_eq!(r.status, 200, "{}", r.body);

    let mut sold = 0;
    for (i, id) in &orders {
        let user = &customers[*i].0;
        let order = app.order(user, id);
        let history: Vec<Value> =
            app.send_as(&user.access_token, "GET", &format!("/api/orders/{id}/history"), None).json()["history"].as_array().cloned().unwrap_or_default();
        let status = order["status"].as_str().unwrap().to_string();
        assert_ne!(status, "pending_payment", "{id}: every hold lapsed, so no order is still payable");
        let ever_paid = history.iter().any(|h| h["to"] == "paid");
        // History rows chain: each one starts where the previous ended.
        for pair in history.windows(2) {
            assert_eq!(pair[1]["from"], pair[0]["to"], "{id}: history {history:?}");
        }
        // Units that went back on hand (a paid order cancelled restocks).
        let restocked: i64 = history
            .iter()
            .filter_map(|h| h["reason"].as_str()?.strip_prefix("restocked ").map(str::to_string))
            .flat_map(|r| r.split_once(": ").map(|(_, what)| what.split(", ").filter_map(|w| w.split(" × ").next()?.parse::<i64>().ok()).sum::<i64>()))
            .sum();
        if ever_paid {
            sold += order["lines"][0]["quantity"].as_i64().unwrap() - restocked;
        } else {
            assert_eq!(restocked, 0, "{id}: restocked without a sale");
            assert!(["cancelled", "expired"].contains(&status.as_str()), "{id}: unpaid but {status}");
        }
    }
    // And money: each order keeps at Stripe (captured less refunded, over
    // all its payments) exactly its total when it ended paid, and nothing
    // when it ended cancelled or expired (a payment that lost to a
    // cancellation, or came for a closed order, went back, once).
    let captures = app.stripe.captures();
    for (i, id) in &orders {
        let order = app.order(&customers[*i].0, id);
        let kept: i64 = captures.iter().filter(|c| c.order_id == *id).map(|c| c.amount_minor - app.stripe.refunded_total(&c.payment_intent)).sum();
        let status = order["status"].as_str().unwrap();
        let owed = if ["cancelled", "expired", "refunded"].contains(&status) { 0 } else { order["total"]["amount_minor"].as_i64().unwrap() };
        assert_eq!(kept, owed, "seed {seed}: {id} ended {status} keeping {kept} at Stripe (flags {})", order["flags"]);
    }
    let (on_hand, reserved, available) = stock(&app, &admin, &product);
    assert_eq!(reserved, 0, "seed {seed}: nothing is held once every order ended");
    assert_eq!(available, on_hand, "seed {seed}");
    assert_eq!(STOCK - on_hand, sold, "seed {seed}: the units gone are exactly those of paid orders, less those restocked (plans {plans:?})");
}
