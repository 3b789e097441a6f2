//! Two app instances on one Postgres and one Redis behave as one shop
//! (README.md, "Scaling out"): what one instance writes the other reads,
//! the last units are sold once whichever instance takes the order, one
//! Stripe event delivered to both is applied once, and login limits count
//! failures from both. Also: with Postgres gone the app answers 503 and
//! comes back by itself when it returns.
//!
//! Each test starts its own Postgres and Redis servers and two test hosts
//! (separate pools, so separate database sessions, as two `spin up`
//! processes or two SpinKube replicas would have). Against `SHOP_BASE_URL`
//! these tests cannot choose the app's stores and say so.

use api_tests::{
    event, launch_host_with, post_from, unique_email, FakeResend, FakeStripe, ServerStores, Shopper, TestApp, TestUser,
    SWEEP_SECRET,
};
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use shop_test_host::testing::BlockingClient;
use shop_test_host::RunningHost;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;

/// Instances `a` and `b` of the shop, sharing stores, keys and fakes.
/// Fields drop in order: the clients, the hosts, then the servers.
struct Pair {
    a: TestApp,
    b: TestApp,
    _hosts: Vec<RunningHost>,
    stores: ServerStores,
}

fn external() -> bool {
    let set = std::env::var("SHOP_BASE_URL").is_ok_and(|u| !u.trim().is_empty());
    if set {
        eprintln!("not applicable against SHOP_BASE_URL: it cannot start instances on chosen stores");
    }
    set
}

/// `count` instances on one fresh Postgres + Redis.
fn instances(count: usize) -> (Vec<TestApp>, Vec<RunningHost>, ServerStores) {
    instances_with(count, &[])
}

/// [`instances`] with extra variables.
fn instances_with(count: usize, extra: &[(&str, &str)]) -> (Vec<TestApp>, Vec<RunningHost>, ServerStores) {
    let stores = ServerStores::start();
    let keys = Ed25519KeyPair::generate();
    let stripe = FakeStripe::start("127.0.0.1:0");
    let resend = FakeResend::start("127.0.0.1:0");
    // Orders stay payable for the whole test, however slow the machine.
    let mut vars: Vec<(&str, &str)> = vec![
        ("stripe_api_base", stripe.url.as_str()),
        ("resend_api_base", resend.url.as_str()),
        ("unpaid_order_ttl_secs", "600"),
    ];
    vars.extend(stores.variables.iter().map(|(k, v)| (*k, v.as_str())));
    vars.extend_from_slice(extra);
    let hosts: Vec<RunningHost> = (0..count).map(|_| launch_host_with(&keys, &vars, &stores.runtime_config)).collect();
    let apps = hosts
        .iter()
        .map(|h| {
            let mut app = TestApp::connect(h.base_url(), Ed25519KeyPair::from_bytes(&keys.to_bytes()).unwrap());
            app.stripe = stripe.clone();
            app.resend = resend.clone();
            app
        })
        .collect();
    (apps, hosts, stores)
}

fn pair() -> Pair {
    let (mut apps, hosts, stores) = instances(2);
    stores.assert_in_use(apps[0].base_url());
    let b = apps.pop().unwrap();
    let a = apps.pop().unwrap();
    Pair { a, b, _hosts: hosts, stores }
}

fn address() -> Value {
    json!({ "shipping_address": { "name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "us" } })
}

/// (on hand, reserved, available) as an admin reads it (never cached).
fn stock(app: &TestApp, admin: &TestUser, product: &str) -> (i64, i64, i64) {
    let r = app.send_as(&admin.access_token, "GET", &format!("/api/products/{product}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    (v["on_hand"].as_i64().unwrap(), v["reserved"].as_i64().unwrap(), v["available"].as_i64().unwrap())
}

fn quantity_in(cart: &Value, product: &str) -> i64 {
    cart["lines"].as_array().unwrap().iter().find(|l| l["product_id"] == product).map(|l| l["quantity"].as_i64().unwrap()).unwrap_or(0)
}

#[test]
fn a_cart_changed_on_one_instance_is_read_on_the_other() {
    if external() {
        return;
    }
    let p = pair();
    let admin = p.a.admin();
    let id = p.a.new_product(&admin, "Shared Cart Lamp", 20)["id"].as_str().unwrap().to_string();

    // A guest: the cart token works on either instance.
    let mut guest = Shopper::guest();
    assert_eq!(p.a.add_to_cart(&mut guest, &id, 1).status, 200);
    let on_b = p.b.get_cart(&mut guest);
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    assert_eq!(quantity_in(&on_b.json(), &id), 1, "{}", on_b.body);
    assert_eq!(p.b.set_cart_quantity(&mut guest, &id, 3).status, 200);
    assert_eq!(quantity_in(&p.a.get_cart(&mut guest).json(), &id), 3);

    // A signed-in customer: adds on both instances at once all count, once.
    let user = p.a.register_customer();
    let barrier = Barrier::new(8);
    std::thread::scope(|s| {
        for i in 0..8 {
            let (app, barrier, token, id) = (if i % 2 == 0 { &p.a } else { &p.b }, &barrier, &user.access_token, &id);
            s.spawn(move || {
                barrier.wait();
                let r = app.add_to_cart(&mut Shopper::user(token), id, 1);
                assert_eq!(r.status, 200, "{}", r.body);
            });
        }
    });
    let a_view = p.a.get_cart(&mut Shopper::user(&user.access_token)).json();
    let b_view = p.b.get_cart(&mut Shopper::user(&user.access_token)).json();
    assert_eq!((quantity_in(&a_view, &id), quantity_in(&b_view, &id)), (8, 8), "{a_view}\n{b_view}");
}

/// Guests shop on both instances while both run the guest-cart sweep at
/// once: the expired carts are removed from Redis, each once, and the guest
/// who keeps shopping (on either instance) keeps every add.
#[test]
fn both_instances_sweep_expired_guest_carts_while_guests_shop_on_both() {
    if external() {
        return;
    }
    let (apps, _hosts, stores) = instances_with(2, &[("guest_cart_idle_ttl", "3s")]);
    let (a, b) = (&apps[0], &apps[1]);
    let admin = a.admin();
    let id = a.new_product(&admin, "Swept Twice", 1000)["id"].as_str().unwrap().to_string();
    let guest_carts = || stores.redis.keys("cart:guest:*").len();
    let mut live = Shopper::guest();
    assert_eq!(a.add_to_cart(&mut live, &id, 1).status, 200);
    for i in 0..8 {
        let app = if i % 2 == 0 { a } else { b };
        assert_eq!(app.add_to_cart(&mut Shopper::guest(), &id, 1).status, 200);
    }
    assert_eq!(guest_carts(), 9);
    let (mut removed, mut added) = (0, 1);
    let started = std::time::Instant::now();
    while removed < 8 {
        assert!(started.elapsed() < std::time::Duration::from_secs(40), "removed only {removed} of 8");
        std::thread::sleep(std::time::Duration::from_secs(1));
        let app = if added % 2 == 0 { a } else { b };
        assert_eq!(app.add_to_cart(&mut live, &id, 1).status, 200);
        added += 1;
        removed += std::thread::scope(|s| {
            let sweeps: Vec<_> = [a, b]
                .into_iter()
                .map(|app| s.spawn(move || app.request("POST", "/api/cart/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None)))
                .collect();
            sweeps
                .into_iter()
                .map(|h| {
                    let r = h.join().unwrap();
                    assert_eq!(r.status, 200, "{}", r.body);
                    r.json()["removed"].as_u64().unwrap() as usize
                })
                .sum::<usize>()
        });
    }
    assert_eq!(removed, 8, "each expired cart removed once, the live one never");
    assert_eq!(guest_carts(), 1);
    assert_eq!(quantity_in(&b.get_cart(&mut live).json(), &id), added, "every add of the live guest is there");
}

#[test]
fn forty_checkouts_over_two_instances_for_five_units_make_five_orders() {
    if external() {
        return;
    }
    let p = pair();
    let admin = p.a.admin();
    let id = p.a.new_product(&admin, "Last Five Kettle", 5)["id"].as_str().unwrap().to_string();
    let buyers: Vec<TestUser> = (0..40)
        .map(|i| {
            let app = if i % 2 == 0 { &p.a } else { &p.b };
            let user = app.register_customer();
            let r = app.add_to_cart(&mut Shopper::user(&user.access_token), &id, 1);
            assert_eq!(r.status, 200, "{}", r.body);
            user
        })
        .collect();

    // Watch the stock row in Postgres the whole time.
    let catalog = BlockingClient::connect(&p.stores.postgres.database_url("catalog")).unwrap();
    let done = AtomicBool::new(false);
    let barrier = Barrier::new(buyers.len());
    let (statuses, samples) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let rows = catalog
                    .query("SELECT stock_on_hand, reserved FROM products WHERE id = $1", &[&id])
                    .unwrap();
                let (on_hand, reserved): (i64, i64) = (rows[0].get(0), rows[0].get(1));
                samples.push((on_hand, reserved));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            samples
        });
        let placing: Vec<_> = buyers
            .iter()
            .enumerate()
            .map(|(i, buyer)| {
                let (app, barrier) = (if i % 2 == 0 { &p.a } else { &p.b }, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let r = app.place_order(buyer, Some(&unique_email("key")), Some(address()));
                    assert!(r.status == 201 || r.status == 409, "{} {}", r.status, r.body);
                    r.status
                })
            })
            .collect();
        let statuses: Vec<u16> = placing.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::Relaxed);
        (statuses, watcher.join().unwrap())
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 5, "{statuses:?}");
    assert!(!samples.is_empty());
    for (on_hand, reserved) in &samples {
        assert!(*on_hand >= 0 && *reserved >= 0 && reserved <= on_hand, "stock row seen as {on_hand} on hand, {reserved} reserved");
    }
    assert_eq!(stock(&p.a, &admin, &id), (5, 5, 0));
    assert_eq!(stock(&p.b, &admin, &id), (5, 5, 0));
    let orders = BlockingClient::connect(&p.stores.postgres.database_url("orders")).unwrap();
    let placed = orders.query("SELECT COUNT(*) FROM order_lines WHERE product_id = $1", &[&id]).unwrap();
    assert_eq!(placed[0].get::<_, i64>(0), 5, "five order lines for the product");
}

#[test]
fn one_stripe_event_delivered_to_both_instances_is_applied_once() {
    if external() {
        return;
    }
    let p = pair();
    let admin = p.a.admin();
    let product = p.a.new_product(&admin, "Twice Paid Mug", 4)["id"].as_str().unwrap().to_string();
    let user = p.a.register_customer();
    assert_eq!(p.a.add_to_cart(&mut Shopper::user(&user.access_token), &product, 2).status, 200);
    let r = p.a.place_order(&user, Some(&unique_email("key")), Some(address()));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let session_id = p.b.start_checkout(&user, &id);
    let paid = p.a.stripe.pay_session(&session_id);
    let evt = event(&format!("evt_{id}_both"), "checkout.session.completed", paid);

    let barrier = Barrier::new(4);
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        // Each instance gets the event twice, all four at the same moment.
        let sends: Vec<_> = [&p.a, &p.b, &p.a, &p.b]
            .into_iter()
            .map(|app| {
                let (barrier, evt) = (&barrier, &evt);
                s.spawn(move || {
                    barrier.wait();
                    let r = app.stripe_sends(evt);
                    (r.status, r.body)
                })
            })
            .collect();
        sends.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(p.b.order(&user, &id)["status"], "paid");
    assert_eq!(stock(&p.b, &admin, &product), (2, 0, 2), "committed once");
    let history = p.b.send_as(&user.access_token, "GET", &format!("/api/orders/{id}/history"), None).json();
    let paid_steps = history["history"].as_array().unwrap().iter().filter(|h| h["to"] == "paid").count();
    assert_eq!(paid_steps, 1, "{history}");

    // Both instances sweep the outbox at once, twice each: one confirmation
    // email, and no email of any kind sent twice.
    std::thread::scope(|s| {
        for app in [&p.a, &p.b, &p.a, &p.b] {
            s.spawn(move || {
                let r = app.request("POST", "/api/notifications/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
                assert_eq!(r.status, 200, "{}", r.body);
            });
        }
    });
    for app in [&p.a, &p.b] {
        let r = app.request("POST", "/api/notifications/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let confirmations =
        p.a.resend.to(&user.email).into_iter().filter(|c| c.idempotency_key() == format!("order.paid/{id}")).count();
    assert_eq!(confirmations, 1);
    let mut keys: Vec<String> = p.a.resend.calls().iter().map(|c| c.idempotency_key().to_string()).collect();
    let sent = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), sent, "an email was sent twice: {keys:?}");
}

#[test]
fn login_failure_limits_count_failures_on_every_instance() {
    if external() {
        return;
    }
    let p = pair();
    // Per account: five failures alternating between the instances lock
    // the account on both.
    let user = p.a.register_customer();
    for i in 0..5 {
        let app = if i % 2 == 0 { &p.a } else { &p.b };
        app.login(&user.email, "wrong password guess").assert_error(401, "invalid_credentials");
    }
    p.b.login(&user.email, &user.password).assert_error(429, "rate_limited");
    p.a.login(&user.email, &user.password).assert_error(429, "rate_limited");

    // Per client address: spraying both instances from one address is
    // limited as soon as spraying one would be.
    let ip = std::net::Ipv4Addr::new(127, 0, 2, 2 + (std::process::id() % 250) as u8);
    let limit: usize = api_tests::LOGIN_FAILURES_PER_CLIENT.parse().unwrap();
    let mut limited_after = None;
    for i in 0..limit + 10 {
        let app = if i % 2 == 0 { &p.a } else { &p.b };
        let login = format!(r#"{{"email":"{}","password":"wrong password {i}"}}"#, unique_email("spray"));
        let (status, _) = post_from(ip, app.base_url(), "/api/auth/login", &login);
        if status == 429 {
            limited_after = Some(i);
            break;
        }
        assert_eq!(status, 401);
    }
    let single = {
        // The same spray against one instance only, from another address.
        let ip = std::net::Ipv4Addr::new(127, 0, 3, 2 + (std::process::id() % 250) as u8);
        (0..limit + 10).find(|i| {
            let login = format!(r#"{{"email":"{}","password":"wrong password {i}"}}"#, unique_email("spray"));
            post_from(ip, p.a.base_url(), "/api/auth/login", &login).0 == 429
        })
    };
    assert!(single.is_some(), "one instance limits a spraying client");
    assert_eq!(limited_after, single, "the limit is the same whether one or two instances are sprayed");
}

#[test]
fn instances_started_together_on_empty_databases_migrate_once_and_serve() {
    if external() {
        return;
    }
    // Three instances, then each one's first requests all at once: every
    // request opens (and so migrates) the databases it needs, and the
    // catalog loads the demo data.
    let (apps, _hosts, stores) = instances(3);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let calls: Vec<_> = apps
            .iter()
            .flat_map(|app| ["/health", "/api/products?limit=5", "/health", "/api/products?q=wire&limit=1"].map(move |p| (app, p)))
            .map(|(app, path)| s.spawn(move || app.get_path(path).status))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}\n{}", stores.postgres.log());
    for (var, name) in api_tests::DATABASE_URL_VARIABLES {
        let db = BlockingClient::connect(&stores.postgres.database_url(name)).unwrap();
        let rows = db.query_i64("SELECT COUNT(*) FROM schema_migrations").unwrap();
        let distinct = db.query_i64("SELECT COUNT(DISTINCT version) FROM schema_migrations").unwrap();
        let known = shop_store_copy::service(name).unwrap().migrations.postgres.len() as i64;
        assert_eq!((rows, distinct), (known, known), "{var}: each migration recorded once");
    }
    let catalog = BlockingClient::connect(&stores.postgres.database_url("catalog")).unwrap();
    assert_eq!(catalog.query_i64("SELECT COUNT(*) FROM data_loads WHERE name = 'demo_catalog'").unwrap(), 1);
    assert_eq!(catalog.query_i64("SELECT COUNT(*) FROM products").unwrap(), 60, "demo catalog loaded once");
    // What one instance creates, the others read.
    let admin = apps[0].admin();
    let id = apps[0].new_product(&admin, "Seen Everywhere", 3)["id"].as_str().unwrap().to_string();
    assert_eq!(stock(&apps[1], &admin, &id), (3, 0, 3));
    assert_eq!(stock(&apps[2], &admin, &id), (3, 0, 3));
}

/// With Postgres stopped, each request that needs a database answers 503
/// with `Retry-After` in the error envelope and `/health` names the
/// databases; once Postgres is back, the app serves again by itself and
/// everything stored before is still there.
#[test]
fn with_postgres_down_requests_get_503_and_the_app_recovers_by_itself() {
    if external() {
        return;
    }
    let (mut apps, _hosts, mut stores) = instances(1);
    let app = apps.pop().unwrap();
    stores.assert_in_use(app.base_url());
    let admin = app.admin();
    let product = app.new_product(&admin, "Outage Umbrella", 7)["id"].as_str().unwrap().to_string();
    let user = app.register_customer();
    assert_eq!(app.add_to_cart(&mut Shopper::user(&user.access_token), &product, 2).status, 200);
    let r = app.place_order(&user, Some(&unique_email("key")), Some(address()));
    assert_eq!(r.status, 201, "{}", r.body);
    let order_id = r.json()["id"].as_str().unwrap().to_string();

    stores.postgres.stop();

    let health = app.get_path("/health");
    let v = health.assert_error(503, "not_ready");
    let failed: Vec<&str> = v["error"]["details"]["failed"].as_array().unwrap().iter().filter_map(|f| f["check"].as_str()).collect();
    for name in ["catalog", "users", "orders", "notifications"] {
        assert!(failed.contains(&name), "/health names the {name} database: {}", health.body);
    }
    assert!(health.header("retry-after").is_some(), "{:?}", health.headers);
    assert!(!health.body.contains("postgres://"), "no connection string in a public answer: {}", health.body);

    let auth = format!("Bearer {}", admin.access_token);
    let needing_the_database: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/products/{product}"), None),
        ("PUT", format!("/api/products/{product}/inventory"), Some(json!({ "stock_on_hand": 9 }))),
        ("GET", format!("/api/orders/{order_id}"), None),
        ("GET", "/api/orders".into(), None),
        ("GET", "/api/users/profile".into(), None),
    ];
    for (method, path, body) in &needing_the_database {
        let r = app.request(method, path, &[("authorization", &auth)], body.as_ref());
        r.assert_error(503, "database_unavailable");
        assert_eq!(r.header("retry-after"), Some("1"), "{method} {path}: {:?}", r.headers);
    }
    app.login(&user.email, &user.password).assert_error(503, "database_unavailable");
    let r = app.register(json!({ "email": unique_email("outage"), "password": api_tests::STRONG_PASSWORD, "first_name": "Out", "last_name": "Age" }));
    r.assert_error(503, "database_unavailable");
    let r = app.place_order(&user, Some(&unique_email("key")), Some(address()));
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);

    stores.postgres.restart().unwrap();

    // Back without a restart of the app: the first health checks may still
    // meet pooled connections the old server closed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let h = app.get_path("/health");
        if h.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not ready 20 s after Postgres returned: {}", h.body);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let signed_in = app.sign_in(&user.email, &user.password);
    let order = app.order(&signed_in, &order_id);
    assert_eq!(order["status"], "pending_payment", "{order}");
    assert_eq!(stock(&app, &admin, &product), (7, 2, 5), "nothing stored was lost or changed by the failed writes");
    let r = app.send_as(&admin.access_token, "PUT", &format!("/api/products/{product}/inventory"), Some(&json!({ "stock_on_hand": 9 })));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(stock(&app, &admin, &product), (9, 2, 7));
}
