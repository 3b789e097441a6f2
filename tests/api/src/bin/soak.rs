//! The soak with invariants (README, "Benchmarks", "The soak with invariants"; run it with
//! `scripts/bench.sh --soak`).
//!
//! Starts the shop on the test host (embedded stores, or `--stores postgres`;
//! demo catalog) with a fake Stripe and a fake Resend, registers one customer
//! per worker, then runs N closed-loop workers for the given time, each doing
//! a weighted mix of what a storefront sees: browsing, search, guest and
//! signed-in carts, sign-ins, orders (some retried with the same
//! Idempotency-Key), payments by Checkout Session or PaymentIntent with the
//! fake Stripe capturing the money and delivering signed webhooks (some
//! twice, some out of order, some paying twice, some racing a
//! cancellation, some late), customer and admin cancellations, refunds and
//! fulfilment, while a scheduler calls the sweeps every second.
//!
//! Afterwards it checks from the outside only (the API as an admin, and what
//! the fakes recorded) and exits 1 on any violation:
//! 1. no 5xx (nor a dropped connection); 2. no request over 2 s;
//! 3. stock conservation per product; 4. every paid order keeps exactly one
//! captured payment and every other order none; 5. every email sent at most
//! once. The exact definitions are in the README and in [`check`].

use api_tests::{event, now, stripe_signature, unique_email, ApiResponse, FakeResend, FakeStripe, Rng, TestApp, STRIPE_WEBHOOK_SECRET, STRONG_PASSWORD, SWEEP_SECRET};
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration as StdDuration, Instant};

const USAGE: &str = "usage: soak [--duration SECS] [--connections N] [--stock N] [--seed N] [--stores embedded|postgres] [--smoke]";

/// A request slower than this is a violation.
const SLOW_MS: f64 = 2000.0;

struct Options {
    duration: u64,
    connections: usize,
    /// Units on hand of every product at the start: low enough that some
    /// orders meet `insufficient_stock`.
    stock: i64,
    seed: u64,
    postgres: bool,
}

fn parse_args() -> Options {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let mut o = Options { duration: 60, connections: 32, stock: 150, seed, postgres: false };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| die(&format!("{a} needs a value\n{USAGE}")));
        let num = |s: String| s.parse::<u64>().unwrap_or_else(|_| die(&format!("{a}: not a number: {s}")));
        match a.as_str() {
            "--duration" => o.duration = num(v()).max(1),
            "--connections" => o.connections = num(v()).max(1) as usize,
            "--stock" => o.stock = num(v()) as i64,
            "--seed" => o.seed = num(v()),
            "--stores" => match v().as_str() {
                "postgres" => o.postgres = true,
                "embedded" => o.postgres = false,
                other => die(&format!("--stores: `postgres` or `embedded`, not {other}")),
            },
            // CI's short run: ten seconds, same invariants.
            "--smoke" => o.duration = 10,
            // scripts/bench.sh passes its own switch through.
            "--soak" => {}
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => die(&format!("unknown argument {other}\n{USAGE}")),
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("soak: {msg}");
    std::process::exit(2)
}

/// One request as the client saw it.
struct Sample {
    kind: &'static str,
    status: u16,
    ms: f64,
    what: String,
}

/// What the workers share: the app, the fakes and the catalog.
struct World {
    app: TestApp,
    admin: String,
    /// Active USD products (orders stay in one currency).
    usd: Vec<String>,
    /// Every active product.
    all: Vec<String>,
    /// Words from product names, for search.
    words: Vec<String>,
}

/// Something a worker does later (a payment arriving after the order's hold).
struct Later {
    due: Instant,
    intent: String,
}

/// What the workload itself saw go wrong (outside the five invariants).
type Findings = Vec<String>;

struct Worker<'w> {
    w: &'w World,
    n: usize,
    rng: Rng,
    email: String,
    token: String,
    guest_cart: Option<String>,
    later: Vec<Later>,
    samples: Vec<Sample>,
    findings: Findings,
    seq: u64,
}

impl<'w> Worker<'w> {
    fn new(w: &'w World, n: usize, rng: Rng, email: String, token: String) -> Worker<'w> {
        Worker { w, n, rng, email, token, guest_cart: None, later: vec![], samples: vec![], findings: vec![], seq: 0 }
    }

    /// Send a request and record it; a dropped connection is status 0.
    fn call(&mut self, kind: &'static str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> ApiResponse {
        let t = Instant::now();
        let app = &self.w.app;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.request(method, path, headers, body)))
            .unwrap_or_else(|e| ApiResponse { status: 0, headers: vec![], body: panic_text(&e) });
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let what = if r.status >= 400 || r.status == 0 || ms > SLOW_MS {
            format!("{method} {path} → {} in {ms:.0} ms: {}", r.status, r.body.chars().take(300).collect::<String>())
        } else {
            String::new()
        };
        self.samples.push(Sample { kind, status: r.status, ms, what });
        r
    }

    fn as_customer(&mut self, kind: &'static str, method: &str, path: &str, body: Option<&Value>) -> ApiResponse {
        let auth = format!("Bearer {}", self.token);
        self.call(kind, method, path, &[("authorization", &auth)], body)
    }

    fn as_admin(&mut self, kind: &'static str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> ApiResponse {
        let auth = format!("Bearer {}", self.w.admin);
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        self.call(kind, method, path, &all, body)
    }

    /// Deliver a Stripe event signed now, as Stripe would, and like Stripe
    /// deliver it again (signed anew) while the answer is not a 2xx: after
    /// 1, 2, 4 and 8 s here, over days at Stripe. Every attempt is recorded.
    fn webhook(&mut self, evt: &Value) -> ApiResponse {
        let mut wait = 1;
        loop {
            let signature = stripe_signature(&evt.to_string(), STRIPE_WEBHOOK_SECRET, now());
            let r = self.call("webhook", "POST", "/api/webhooks/stripe", &[("stripe-signature", &signature)], Some(evt));
            if (200..300).contains(&r.status) || wait > 8 {
                return r;
            }
            std::thread::sleep(StdDuration::from_secs(wait));
            wait *= 2;
        }
    }

    fn key(&mut self, what: &str) -> String {
        self.seq += 1;
        format!("soak-{}-{}-{what}-{}", std::process::id(), self.n, self.seq)
    }

    fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            if let Some(i) = self.later.iter().position(|l| l.due <= Instant::now()) {
                let l = self.later.swap_remove(i);
                self.pay_intent(&l.intent);
                continue;
            }
            match self.rng.below(100) {
                0..=24 => self.browse(),
                25..=34 => self.search(),
                35..=49 => self.guest_cart(),
                50..=56 => self.own_cart(),
                57..=59 => self.sign_in(),
                _ => self.order(),
            }
        }
    }

    fn browse(&mut self) {
        match self.rng.below(3) {
            0 => {
                let page = 1 + self.rng.below(3);
                self.call("browse", "GET", &format!("/api/products?limit=20&page={page}"), &[], None);
            }
            1 => {
                let id = self.rng.pick(&self.w.all).clone();
                self.call("browse", "GET", &format!("/api/products/{id}"), &[], None);
            }
            _ => {
                self.call("browse", "GET", "/api/categories", &[], None);
            }
        }
    }

    fn search(&mut self) {
        let word = self.rng.pick(&self.w.words).clone();
        self.call("search", "GET", &format!("/api/products?q={word}&limit=20"), &[], None);
    }

    fn guest_cart(&mut self) {
        let product = self.rng.pick(&self.w.usd).clone();
        let token = self.guest_cart.clone();
        let headers: Vec<(&str, &str)> = token.iter().map(|t| ("x-cart-token", t.as_str())).collect();
        let quantity = 1 + self.rng.below(3);
        let r = self.call("cart", "POST", "/api/cart/items", &headers, Some(&json!({ "product_id": product, "quantity": quantity })));
        if let Some(t) = r.header("x-cart-token") {
            self.guest_cart = Some(t.to_string());
        }
        let token = self.guest_cart.clone();
        let headers: Vec<(&str, &str)> = token.iter().map(|t| ("x-cart-token", t.as_str())).collect();
        let quantity = 1 + self.rng.below(4);
        match self.rng.below(3) {
            0 => self.call("cart", "PUT", &format!("/api/cart/items/{product}"), &headers, Some(&json!({ "quantity": quantity }))),
            1 => self.call("cart", "DELETE", &format!("/api/cart/items/{product}"), &headers, None),
            _ => self.call("cart", "GET", "/api/cart", &headers, None),
        };
    }

    fn own_cart(&mut self) {
        let product = self.rng.pick(&self.w.usd).clone();
        self.as_customer("cart", "POST", "/api/cart/items", Some(&json!({ "product_id": product, "quantity": 1 })));
        let quantity = 1 + self.rng.below(3);
        self.as_customer("cart", "PUT", &format!("/api/cart/items/{product}"), Some(&json!({ "quantity": quantity })));
        self.as_customer("cart", "GET", "/api/cart", None);
        self.as_customer("cart", "DELETE", &format!("/api/cart/items/{product}"), None);
    }

    fn sign_in(&mut self) {
        let body = json!({ "email": self.email, "password": STRONG_PASSWORD });
        let r = self.call("login", "POST", "/api/auth/login", &[], Some(&body));
        if r.status == 200 {
            if let Some(t) = serde_json::from_str::<Value>(&r.body).ok().and_then(|v| v["accessToken"].as_str().map(str::to_string)) {
                self.token = t;
            }
        }
    }

    /// Cart → order (sometimes the POST again with its key) → a fate.
    fn order(&mut self) {
        self.as_customer("order", "DELETE", "/api/cart", None);
        let first = self.rng.below(self.w.usd.len());
        let lines = 1 + self.rng.below(2);
        for k in 0..lines {
            let product = self.w.usd[(first + k) % self.w.usd.len()].clone();
            let quantity = 1 + self.rng.below(2);
            self.as_customer("order", "POST", "/api/cart/items", Some(&json!({ "product_id": product, "quantity": quantity })));
        }
        let key = self.key("order");
        let auth = format!("Bearer {}", self.token);
        let placed = self.call("order", "POST", "/api/orders", &[("authorization", &auth), ("idempotency-key", &key)], None);
        if placed.status != 201 {
            return;
        }
        let order: Value = serde_json::from_str(&placed.body).unwrap_or_default();
        let id = order["id"].as_str().unwrap_or_default().to_string();
        if self.rng.chance(0.1) {
            let again = self.call("order", "POST", "/api/orders", &[("authorization", &auth), ("idempotency-key", &key)], None);
            let same = serde_json::from_str::<Value>(&again.body).ok().and_then(|v| v["id"].as_str().map(str::to_string));
            if again.status != 201 || same.as_deref() != Some(id.as_str()) || again.header("idempotent-replayed") != Some("true") {
                self.findings.push(format!("order {id}: the same Idempotency-Key again answered {} {}", again.status, again.body));
            }
        }
        let paid = match self.rng.below(100) {
            0..=34 => self.pay_by_session(&id),
            35..=54 => self.start_intent(&id).is_some_and(|pi| self.pay_intent(&pi)),
            55..=59 => {
                // Two tabs: one payment through the session, another through an intent.
                let intent = self.start_intent(&id);
                let paid = self.pay_by_session(&id);
                intent.is_some_and(|pi| self.pay_intent(&pi)) || paid
            }
            60..=71 => {
                self.as_customer("cancel", "POST", &format!("/api/orders/{id}/cancel"), None);
                false
            }
            72..=76 => {
                self.pay_racing_cancel(&id);
                false
            }
            77..=86 => {
                // Paid after the hold lapsed (honoured or refunded automatically).
                if let Some(intent) = self.start_intent(&id) {
                    let due = Instant::now() + StdDuration::from_millis(9_000 + self.rng.below(3_000) as u64);
                    self.later.push(Later { due, intent });
                }
                false
            }
            _ => false, // left to expire
        };
        if paid {
            self.after_payment(&id);
        }
    }

    /// Create a Checkout Session, let the customer pay it, and deliver its
    /// events: sometimes the success page first, sometimes the event twice,
    /// sometimes also `payment_intent.succeeded` for the session's intent.
    fn pay_by_session(&mut self, id: &str) -> bool {
        let r = self.as_customer("pay", "POST", "/api/payments/checkout-session", Some(&json!({ "order_id": id })));
        let Some(session) = serde_json::from_str::<Value>(&r.body).ok().and_then(|v| v["id"].as_str().map(str::to_string)) else { return false };
        if r.status != 201 {
            return false;
        }
        let paid = self.w.app.stripe.pay_session(&session);
        if self.rng.chance(0.2) {
            self.as_customer("pay", "GET", &format!("/api/payments/checkout-session/{session}"), None);
        }
        let evt = event(&format!("evt_cs_{session}"), "checkout.session.completed", paid.clone());
        let r = self.webhook(&evt);
        if self.rng.chance(0.25) {
            self.webhook(&evt);
        }
        if self.rng.chance(0.2) {
            let pi = json!({ "id": paid["payment_intent"], "object": "payment_intent", "status": "succeeded",
                "amount_received": paid["amount_total"], "currency": paid["currency"], "metadata": { "order_id": id } });
            self.webhook(&event(&format!("evt_pi_{session}"), "payment_intent.succeeded", pi));
        }
        r.status == 200
    }

    fn start_intent(&mut self, id: &str) -> Option<String> {
        let r = self.as_customer("pay", "POST", "/api/payments/create-intent", Some(&json!({ "order_id": id })));
        (r.status == 201).then(|| serde_json::from_str::<Value>(&r.body).ok()?["id"].as_str().map(str::to_string)).flatten()
    }

    /// The customer confirms the intent; its events arrive, sometimes a
    /// failed attempt first, sometimes that failure after the success (out
    /// of order), sometimes the success twice.
    fn pay_intent(&mut self, intent: &str) -> bool {
        let pi = self.w.app.stripe.pay_intent(intent);
        let mut failed = pi.clone();
        failed["status"] = json!("requires_payment_method");
        failed["amount_received"] = json!(0);
        let failure = event(&format!("evt_fail_{intent}"), "payment_intent.payment_failed", failed);
        let failure_late = self.rng.chance(0.2);
        if !failure_late && self.rng.chance(0.2) {
            self.webhook(&failure);
        }
        let success = event(&format!("evt_ok_{intent}"), "payment_intent.succeeded", pi);
        let r = self.webhook(&success);
        if self.rng.chance(0.25) {
            self.webhook(&success);
        }
        if failure_late {
            self.webhook(&failure);
        }
        r.status == 200
    }

    /// The customer pays and cancels at the same moment (two tabs).
    fn pay_racing_cancel(&mut self, id: &str) {
        let r = self.as_customer("pay", "POST", "/api/payments/checkout-session", Some(&json!({ "order_id": id })));
        let Some(session) = serde_json::from_str::<Value>(&r.body).ok().and_then(|v| v["id"].as_str().map(str::to_string)) else { return };
        let paid = self.w.app.stripe.pay_session(&session);
        let evt = event(&format!("evt_cs_{session}"), "checkout.session.completed", paid);
        let signature = stripe_signature(&evt.to_string(), STRIPE_WEBHOOK_SECRET, now());
        let auth = format!("Bearer {}", self.token);
        let cancel_path = format!("/api/orders/{id}/cancel");
        let app = &self.w.app;
        let timed = |method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>| {
            let t = Instant::now();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.request(method, path, headers, body)))
                .unwrap_or_else(|e| ApiResponse { status: 0, headers: vec![], body: panic_text(&e) });
            (r, t.elapsed().as_secs_f64() * 1000.0)
        };
        let (hook, cancel) = std::thread::scope(|s| {
            let hook = s.spawn(|| timed("POST", "/api/webhooks/stripe", &[("stripe-signature", &signature)], Some(&evt)));
            let cancel = timed("POST", &cancel_path, &[("authorization", &auth)], None);
            (hook.join().expect("webhook thread"), cancel)
        });
        let delivered = (200..300).contains(&hook.0.status);
        for (kind, what, (r, ms)) in [("webhook", "POST /api/webhooks/stripe", hook), ("cancel", cancel_path.as_str(), cancel)] {
            let what = if r.status >= 400 || r.status == 0 || ms > SLOW_MS { format!("{what} → {} in {ms:.0} ms: {}", r.status, r.body) } else { String::new() };
            self.samples.push(Sample { kind, status: r.status, ms, what });
        }
        if !delivered {
            // Stripe delivers it again.
            self.webhook(&evt);
        }
    }

    /// The orders sweep (again while it says `more`) and the notifications
    /// sweep, as a scheduler calls them.
    fn sweeps(&mut self) {
        for _ in 0..20 {
            let r = self.call("sweep", "POST", "/api/orders/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
            if serde_json::from_str::<Value>(&r.body).ok().and_then(|v| v["more"].as_bool()) != Some(true) {
                break;
            }
        }
        self.call("sweep", "POST", "/api/notifications/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
    }

    /// Deliver the `charge.refunded` events of the refunds made so far.
    fn refund_events(&mut self) {
        for evt in self.w.app.stripe.take_refund_events() {
            self.webhook(&evt);
        }
    }

    /// A paid order's life: fulfilment, a refund by an admin, or a cancellation.
    fn after_payment(&mut self, id: &str) {
        match self.rng.below(100) {
            0..=14 => {
                let body = json!({ "carrier": "UPS", "tracking_number": format!("1Z{}", self.rng.next() % 1_000_000_000) });
                self.as_admin("admin", "PUT", &format!("/api/orders/{id}/tracking"), &[], Some(&body));
                if self.rng.chance(0.5) {
                    self.as_admin("admin", "PUT", &format!("/api/orders/{id}/status"), &[], Some(&json!({ "status": "delivered" })));
                }
            }
            15..=21 => {
                let key = self.key("refund");
                let body = json!({ "order_id": id, "restock": self.rng.chance(0.5) });
                self.as_admin("admin", "POST", "/api/payments/refund", &[("idempotency-key", &key)], Some(&body));
                if self.rng.chance(0.2) {
                    self.as_admin("admin", "POST", "/api/payments/refund", &[("idempotency-key", &key)], Some(&body));
                }
            }
            22..=28 => {
                self.as_customer("cancel", "POST", &format!("/api/orders/{id}/cancel"), None);
            }
            29..=31 => {
                let body = json!({ "status": "cancelled", "restock": false, "reason": "soak: not restocked" });
                self.as_admin("admin", "PUT", &format!("/api/orders/{id}/status"), &[], Some(&body));
            }
            _ => {}
        }
    }
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "request failed".into())
}

/// Start the shop with the fakes wired in; `--stores postgres` goes through
/// `SHOP_TEST_STORES`, as the tests do.
fn start(o: &Options) -> (shop_test_host::RunningHost, TestApp) {
    if o.postgres {
        std::env::set_var("SHOP_TEST_STORES", "postgres");
    }
    let keys = Ed25519KeyPair::generate();
    let stripe = FakeStripe::start("127.0.0.1:0");
    let resend = FakeResend::start("127.0.0.1:0");
    let host = api_tests::launch_host(&keys, &[("stripe_api_base", &stripe.url), ("resend_api_base", &resend.url)]);
    let mut app = TestApp::connect(host.base_url(), keys);
    app.stripe = stripe;
    app.resend = resend;
    (host, app)
}

/// Every product as an admin sees it (`on_hand`, `reserved`), inactive too.
fn admin_products(app: &TestApp, admin: &str) -> Vec<Value> {
    app.all_pages(Some(admin), "/api/products", "include_inactive=true", "products")
}

/// Every order, newest first.
fn admin_orders(app: &TestApp, admin: &str) -> Vec<Value> {
    app.all_pages(Some(admin), "/api/orders/all", "", "orders")
}

fn main() {
    let o = parse_args();
    eprintln!("soak: seed {}, {} workers, {} s, {} stores", o.seed, o.connections, o.duration, if o.postgres { "postgres" } else { "embedded" });
    let (_host, app) = start(&o);
    let admin = app.admin().access_token;

    // Known stock everywhere, and one customer per worker.
    let products: Vec<Value> = app.all_products("");
    for p in &products {
        let id = p["id"].as_str().unwrap();
        let r = app.send_as(&admin, "PUT", &format!("/api/products/{id}/inventory"), Some(&json!({ "stock_on_hand": o.stock })));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let initial: HashMap<String, i64> = admin_products(&app, &admin).iter().map(|p| (p["id"].as_str().unwrap().to_string(), p["on_hand"].as_i64().unwrap())).collect();
    let id_of = |p: &Value| p["id"].as_str().unwrap().to_string();
    let usd: Vec<String> = products.iter().filter(|p| p["price"]["currency"] == "USD").map(id_of).collect();
    let all: Vec<String> = products.iter().map(id_of).collect();
    let mut words: Vec<String> = products
        .iter()
        .filter_map(|p| p["name"].as_str()?.split_whitespace().next().map(|w| w.to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect()))
        .filter(|w: &String| w.len() >= 3)
        .collect();
    words.dedup();
    assert!(usd.len() >= 4, "the demo catalog is needed");
    let customers: Vec<(String, String)> = (0..o.connections)
        .map(|_| {
            let email = unique_email("soak");
            let r = app.register(json!({ "email": email, "password": STRONG_PASSWORD, "first_name": "Sam", "last_name": "Soak" }));
            assert_eq!(r.status, 201, "register: {}", r.body);
            let token = app.sign_in(&email, STRONG_PASSWORD).access_token;
            (email, token)
        })
        .collect();
    let world = World { app, admin, usd, all, words };

    // The load, with a scheduler calling the sweeps every second.
    eprintln!("soak: running");
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (workers, sweeps) = std::thread::scope(|s| {
        let handles: Vec<_> = customers
            .into_iter()
            .enumerate()
            .map(|(n, (email, token))| {
                let (world, stop) = (&world, &stop);
                let rng = Rng::new(o.seed ^ (n as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
                s.spawn(move || {
                    let mut w = Worker::new(world, n, rng, email, token);
                    w.run(stop);
                    (w.samples, w.findings)
                })
            })
            .collect();
        let scheduler = s.spawn(|| {
            // The scheduler's sweeps, and Stripe sending `charge.refunded`
            // after each refund (recorded like any request).
            let rng = Rng::new(o.seed);
            let mut w = Worker::new(&world, o.connections, rng, String::new(), String::new());
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(StdDuration::from_secs(1));
                w.sweeps();
                w.refund_events();
            }
            w.samples
        });
        std::thread::sleep(StdDuration::from_secs(o.duration));
        stop.store(true, Ordering::Relaxed);
        let workers: Vec<(Vec<Sample>, Findings)> = handles.into_iter().map(|h| h.join().expect("worker")).collect();
        (workers, scheduler.join().expect("scheduler"))
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut samples: Vec<Sample> = sweeps;
    let mut findings: Findings = Vec::new();
    for (s, f) in workers {
        samples.extend(s);
        findings.extend(f);
    }

    // Let every short hold lapse, then sweep, so nothing is between states.
    let app = &world.app;
    let pending_until = admin_orders(app, &world.admin)
        .iter()
        .filter(|o| o["status"] == "pending_payment")
        .filter_map(|o| o["expires_at"].as_i64())
        .filter(|&t| t <= now() + 60)
        .max();
    if let Some(t) = pending_until {
        let wait = (t - now() + 2).max(0) as u64;
        eprintln!("soak: waiting {wait} s for the last short holds to lapse");
        std::thread::sleep(StdDuration::from_secs(wait));
    }
    // Twice: the first sweep's automatic refunds bring refund events.
    let mut last = Worker::new(&world, o.connections, Rng::new(o.seed), String::new(), String::new());
    for _ in 0..2 {
        last.refund_events();
        last.sweeps();
    }
    last.refund_events();
    samples.extend(last.samples);

    let report = check(&world, &initial, &samples, findings);
    print_report(&o, elapsed, &samples, &report);
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
}

/// The figures and the violations found after the run.
struct Report {
    orders_by_status: BTreeMap<String, usize>,
    orders_ever_paid: usize,
    captures: usize,
    automatic_refunds: usize,
    emails: usize,
    emails_by_kind: BTreeMap<String, usize>,
    units_sold: i64,
    units_reserved: i64,
    violations: Vec<String>,
}

/// The invariants, checked from outside:
///
/// 1. no response 5xx and no dropped connection;
/// 2. no request over [`SLOW_MS`];
/// 3. per product: `on_hand = initial − sold` and `reserved = pending`, where
///    `sold` is the units of every order whose history ever entered `paid`
///    less the units its history says were restocked, and `pending` the
///    units of the orders still `pending_payment`;
/// 4. an order in `paid`, `processing`, `shipped` or `delivered` keeps
///    exactly one captured payment (captured by the fake Stripe and not
///    refunded in full), the one its payment record names; every other order
///    keeps none;
/// 5. the fake Resend accepted at most one email per idempotency key
///    (`<event-type>/<entity-id>`), and none without a key.
fn check(world: &World, initial: &HashMap<String, i64>, samples: &[Sample], mut violations: Vec<String>) -> Report {
    let app = &world.app;
    let admin = &world.admin;
    for s in samples.iter().filter(|s| s.status >= 500 || s.status == 0) {
        violations.push(format!("5xx: {}", s.what));
    }
    for s in samples.iter().filter(|s| s.ms > SLOW_MS && s.status < 500 && s.status != 0) {
        violations.push(format!("over 2 s: {}", s.what));
    }

    let orders = admin_orders(app, admin);
    let products = admin_products(app, admin);
    let mut orders_by_status: BTreeMap<String, usize> = BTreeMap::new();
    for o in &orders {
        *orders_by_status.entry(o["status"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }

    // History of every order that may have been paid, in parallel.
    let maybe_paid: Vec<&Value> = orders.iter().filter(|o| !matches!(o["status"].as_str(), Some("pending_payment") | Some("expired"))).collect();
    let histories: HashMap<String, Value> = parallel(&maybe_paid, |o| {
        let id = o["id"].as_str().unwrap_or("");
        (id.to_string(), app.send_as(admin, "GET", &format!("/api/orders/{id}/history"), None).json())
    });
    let payments: HashMap<String, Value> = parallel(&maybe_paid, |o| {
        let id = o["id"].as_str().unwrap_or("");
        (id.to_string(), app.send_as(admin, "GET", &format!("/api/payments/order/{id}"), None).json())
    });

    // 3. Stock conservation.
    let mut sold: HashMap<String, i64> = HashMap::new();
    let mut pending: HashMap<String, i64> = HashMap::new();
    let mut orders_ever_paid = 0;
    let mut automatic_refunds = 0;
    // Per product: the ever-paid orders that ended cancelled with no restock
    // noted for it (where units put back without a note would hide).
    let mut cancelled_unnoted: HashMap<String, Vec<String>> = HashMap::new();
    for o in &orders {
        let id = o["id"].as_str().unwrap_or("");
        let lines = o["lines"].as_array().cloned().unwrap_or_default();
        if o["status"] == "pending_payment" {
            for l in &lines {
                *pending.entry(l["product_id"].as_str().unwrap_or("").to_string()).or_default() += l["quantity"].as_i64().unwrap_or(0);
            }
            continue;
        }
        let Some(history) = histories.get(id) else { continue };
        let rows = history["history"].as_array().cloned().unwrap_or_default();
        automatic_refunds += payments.get(id).and_then(|p| p["automatic_refunds"].as_array().map(Vec::len)).unwrap_or(0);
        if !rows.iter().any(|r| r["to"] == "paid") {
            continue;
        }
        orders_ever_paid += 1;
        let by_sku: HashMap<&str, &str> = lines.iter().filter_map(|l| Some((l["sku"].as_str()?, l["product_id"].as_str()?))).collect();
        for l in &lines {
            *sold.entry(l["product_id"].as_str().unwrap_or("").to_string()).or_default() += l["quantity"].as_i64().unwrap_or(0);
        }
        for reason in rows.iter().filter_map(|r| r["reason"].as_str()) {
            let Some(rest) = reason.strip_prefix("restocked (") else { continue };
            let Some((_, what)) = rest.split_once("): ") else { continue };
            for part in what.split(", ") {
                let Some((q, sku)) = part.split_once(" × ") else {
                    violations.push(format!("order {id}: unreadable restock note {reason:?}"));
                    continue;
                };
                match (q.parse::<i64>(), by_sku.get(sku)) {
                    (Ok(q), Some(p)) => *sold.entry(p.to_string()).or_default() -= q,
                    _ => violations.push(format!("order {id}: restock note names no line of the order: {reason:?}")),
                }
            }
        }
        if o["status"] == "cancelled" {
            let cancel = rows.iter().find(|r| r["to"] == "cancelled");
            let by = cancel.and_then(|r| r["actor"].as_str()).unwrap_or("?");
            for l in &lines {
                let sku = l["sku"].as_str().unwrap_or("");
                let noted = rows.iter().filter_map(|r| r["reason"].as_str()).any(|r| r.starts_with("restocked (") && r.contains(&format!(" × {sku}")));
                if !noted {
                    let flags = o["flags"].to_string();
                    cancelled_unnoted.entry(l["product_id"].as_str().unwrap_or("").to_string()).or_default().push(format!("{id} (cancelled by {by}, flags {flags})"));
                }
            }
        }
    }
    for p in &products {
        let id = p["id"].as_str().unwrap_or("");
        let (on_hand, reserved) = (p["on_hand"].as_i64().unwrap_or(-1), p["reserved"].as_i64().unwrap_or(-1));
        let start = initial.get(id).copied().unwrap_or(-1);
        let (s, r) = (sold.get(id).copied().unwrap_or(0), pending.get(id).copied().unwrap_or(0));
        if on_hand != start - s {
            let suspects = cancelled_unnoted.get(id).map(|v| v.join("; ")).unwrap_or_default();
            violations.push(format!("stock: {} on hand {on_hand}, but initial {start} − sold {s} = {}; paid orders cancelled without a restock noted for it: [{suspects}]", p["sku"], start - s));
        }
        if reserved != r {
            violations.push(format!("stock: {} reserved {reserved}, but pending orders hold {r}", p["sku"]));
        }
    }

    // 4. Money kept per order.
    let stripe = &app.stripe;
    let captures = stripe.captures();
    let known: HashSet<&str> = orders.iter().filter_map(|o| o["id"].as_str()).collect();
    let mut kept: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in &captures {
        if !known.contains(c.order_id.as_str()) {
            violations.push(format!("payment: {} captured {} for an order the shop does not list ({})", c.payment_intent, c.amount_minor, c.order_id));
        }
        let back = stripe.refunded(&c.payment_intent);
        if back > c.amount_minor {
            violations.push(format!("payment: {} refunded {back}, more than its {} captured", c.payment_intent, c.amount_minor));
        }
        if back < c.amount_minor {
            kept.entry(c.order_id.as_str()).or_default().push(c.payment_intent.as_str());
        }
    }
    // What an admin would look at for an order whose money is wrong.
    let story = |id: &str| {
        let r = app.send_as(admin, "GET", &format!("/api/orders/{id}/history"), None);
        let steps: Vec<String> = serde_json::from_str::<Value>(&r.body).unwrap_or_default()["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|h| format!("{}→{} ({}, {})", h["from"].as_str().unwrap_or("·"), h["to"].as_str().unwrap_or("?"), h["actor"].as_str().unwrap_or(""), h["reason"].as_str().unwrap_or("")))
            .collect();
        let p: Value = serde_json::from_str(&app.send_as(admin, "GET", &format!("/api/payments/order/{id}"), None).body).unwrap_or_default();
        let objects: Vec<String> = p["objects"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|o| format!("{} {} {} {}/{}", o["kind"].as_str().unwrap_or(""), o["id"].as_str().unwrap_or(""), o["status"].as_str().unwrap_or(""), o["amount_minor"], o["amount_refunded"]))
            .collect();
        let stripe_side: Vec<String> = captures.iter().filter(|c| c.order_id == id).map(|c| format!("{} captured {} refunded {}", c.payment_intent, c.amount_minor, stripe.refunded(&c.payment_intent))).collect();
        format!(
            "\n    history: {}\n    payment: {}\n    ledger: {}\n    automatic refunds: {}\n    fake Stripe: {}",
            steps.join("; "),
            p["payment"],
            objects.join("; "),
            p["automatic_refunds"],
            stripe_side.join("; ")
        )
    };
    for o in &orders {
        let id = o["id"].as_str().unwrap_or("");
        let status = o["status"].as_str().unwrap_or("");
        let keeps = kept.get(id).cloned().unwrap_or_default();
        if matches!(status, "paid" | "processing" | "shipped" | "delivered") {
            if keeps.len() != 1 {
                violations.push(format!("payment: {status} order {id} keeps {} captured payments: {keeps:?}{}", keeps.len(), story(id)));
            } else {
                let named = payments.get(id).and_then(|p| p["payment"]["payment_intent"].as_str().map(str::to_string));
                if named.as_deref() != Some(keeps[0]) {
                    violations.push(format!("payment: {status} order {id} kept {} but its payment record names {named:?}{}", keeps[0], story(id)));
                }
            }
        } else if !keeps.is_empty() {
            violations.push(format!("payment: {status} order {id} keeps money: {keeps:?}{}", story(id)));
        }
    }

    // 5. Emails at most once.
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut emails_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let accepted: Vec<_> = app.resend.calls().into_iter().filter(|c| (200..300).contains(&c.status)).collect();
    for c in &accepted {
        let key = c.idempotency_key().to_string();
        if key.is_empty() {
            violations.push(format!("email without an idempotency key to {}: {}", c.body["to"], c.body["subject"]));
        }
        *emails_by_kind.entry(key.split('/').next().unwrap_or("").to_string()).or_default() += 1;
        *by_key.entry(key).or_default() += 1;
    }
    for (key, n) in &by_key {
        if *n > 1 && !key.is_empty() {
            violations.push(format!("email {key} sent {n} times"));
        }
    }

    Report {
        orders_by_status,
        orders_ever_paid,
        captures: captures.len(),
        automatic_refunds,
        emails: accepted.len(),
        emails_by_kind,
        units_sold: sold.values().sum(),
        units_reserved: pending.values().sum(),
        violations,
    }
}

/// Map `f` over `items` on eight threads.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> (String, R) + Sync) -> HashMap<String, R> {
    let chunk = items.len().div_ceil(8).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(chunk).map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("reader")).collect()
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() as f64) * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn print_report(o: &Options, elapsed: f64, samples: &[Sample], r: &Report) {
    println!("soak: {} workers for {elapsed:.1} s, {} stores, seed {}", o.connections, if o.postgres { "Postgres + Redis" } else { "embedded" }, o.seed);
    println!();
    println!("| requests | count | req/s | 2xx | 4xx | 5xx | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut kinds: Vec<&str> = samples.iter().map(|s| s.kind).collect();
    kinds.sort();
    kinds.dedup();
    let row = |label: &str, of: Vec<&Sample>| {
        let mut ms: Vec<f64> = of.iter().map(|s| s.ms).collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        let count = |lo: u16, hi: u16| of.iter().filter(|s| (lo..hi).contains(&s.status)).count();
        println!(
            "| {label} | {} | {:.0} | {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
            of.len(),
            of.len() as f64 / elapsed,
            count(200, 400),
            count(400, 500),
            count(500, 600) + count(0, 1),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or(0.0)
        );
    };
    for k in &kinds {
        row(k, samples.iter().filter(|s| s.kind == *k).collect());
    }
    row("**all**", samples.iter().collect());
    println!();
    let placed: usize = r.orders_by_status.values().sum();
    let statuses: Vec<String> = r.orders_by_status.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("| orders | |");
    println!("|---|---|");
    println!("| placed | {placed} |");
    println!("| ever paid | {} |", r.orders_ever_paid);
    println!("| by status at the end | {} |", statuses.join(", "));
    println!("| payments captured by Stripe | {} |", r.captures);
    println!("| automatic refunds (paid twice, after cancel or expiry) | {} |", r.automatic_refunds);
    println!("| units sold / still reserved | {} / {} |", r.units_sold, r.units_reserved);
    let kinds: Vec<String> = r.emails_by_kind.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("| emails sent | {} ({}) |", r.emails, kinds.join(", "));
    println!("| violations | {} |", r.violations.len());
    // The refusals the workload met (expected ones: stock ran out, a
    // cancellation won a race...), one example of each.
    let mut seen: BTreeMap<(&str, u16, String), (usize, &str)> = BTreeMap::new();
    for s in samples.iter().filter(|s| (400..500).contains(&s.status)) {
        let code = s.what.split("\"code\":\"").nth(1).and_then(|c| c.split('"').next()).unwrap_or("").to_string();
        seen.entry((s.kind, s.status, code)).or_insert((0, s.what.as_str())).0 += 1;
    }
    if !seen.is_empty() {
        println!();
        println!("| 4xx answers (not violations) | count | example |");
        println!("|---|---|---|");
        for ((kind, status, code), (n, example)) in &seen {
            let example: String = example.chars().take(160).collect();
            println!("| {kind} {status} `{code}` | {n} | {} |", example.replace('|', "\\|"));
        }
    }
    if !r.violations.is_empty() {
        println!();
        println!("violations:");
        for v in &r.violations {
            println!("- {v}");
        }
    }
}
