//! The data-path benchmark (README, "Benchmarks"; run it with `scripts/bench.sh`).
//!
//! Starts three hosts as separate processes — the shop (`spin.toml`,
//! embedded stores, demo catalog), a bare component (`tests/fixtures/bare`)
//! and the floor for stored reads (`tests/fixtures/kv-read`: the bare
//! component plus one key-value `open` and `get`) — or uses running ones
//! (`--base-url`, `--bare-url`, optionally `--floor-url`, e.g. real `spin
//! up`s). Then, in alternating rounds so drift hits every figure alike:
//!
//! - open-loop-ish HTTP load with `wrk` (Debian's package) on the bare
//!   component, the floor, the product listing, one product, search and a three-line
//!   cart (a guest's, and a signed-in customer's: a token checked per request);
//! - the listing again with N pending orders (live stock reservations);
//! - order placement as a closed loop: W workers, each its own customer,
//!   one order = `POST /api/cart/items` + `POST /api/orders`.
//!
//! Every throughput is printed as a ratio to the bare component's requests/s
//! of the same round, and the table ends with each host's resident memory.
//! Numbers depend on the machine; this is never a test.

use api_tests::{unique_email, TestApp, TestUser, ADMIN_EMAIL, STRONG_PASSWORD};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

const USAGE: &str = "usage: bench [--duration SECS] [--connections N] [--rounds N] [--pending N] \
[--workers W,W] [--base-url URL --bare-url URL [--floor-url URL] [--shop-pid PID --bare-pid PID --floor-pid PID]] [--host-bin PATH] [--only TEXT] [--variable k=v ...] [--stores embedded|postgres] [--page-runs N] [--smoke]";

struct Options {
    duration: u64,
    connections: u32,
    rounds: u32,
    pending: u32,
    workers: Vec<u32>,
    base_url: Option<String>,
    bare_url: Option<String>,
    shop_pid: Option<u32>,
    bare_pid: Option<u32>,
    /// The floor for stored reads (`tests/fixtures/kv-read`) when the hosts
    /// are given: without it, that row is left out.
    floor_url: Option<String>,
    floor_pid: Option<u32>,
    host_bin: Option<PathBuf>,
    /// Run only the scenarios whose label contains this text.
    only: Option<String>,
    /// Extra `--variable k=v` for the shop host.
    variables: Vec<(String, String)>,
    /// `postgres`: every service database on a throwaway Postgres, carts and
    /// the catalog cache on a throwaway Redis.
    postgres: bool,
    /// First loads of the storefront for the page budget
    /// (`tests/browser/budget.mjs`).
    page_runs: u32,
}

fn parse_args() -> Options {
    let mut o = Options {
        duration: 10,
        connections: 32,
        rounds: 2,
        pending: 10_000,
        workers: vec![8, 32],
        base_url: None,
        bare_url: None,
        shop_pid: None,
        bare_pid: None,
        floor_url: None,
        floor_pid: None,
        host_bin: None,
        only: None,
        variables: Vec::new(),
        postgres: false,
        page_runs: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| die(&format!("{a} needs a value\n{USAGE}")));
        let num = |s: String| s.parse::<u64>().unwrap_or_else(|_| die(&format!("{a}: not a number: {s}")));
        match a.as_str() {
            "--duration" => o.duration = num(v()),
            "--connections" => o.connections = num(v()) as u32,
            "--rounds" => o.rounds = num(v()).max(1) as u32,
            "--pending" => o.pending = num(v()) as u32,
            "--workers" => o.workers = v().split(',').map(|w| num(w.to_string()) as u32).collect(),
            "--base-url" => o.base_url = Some(v().trim_end_matches('/').to_string()),
            "--bare-url" => o.bare_url = Some(v().trim_end_matches('/').to_string()),
            "--shop-pid" => o.shop_pid = Some(num(v()) as u32),
            "--bare-pid" => o.bare_pid = Some(num(v()) as u32),
            "--floor-url" => o.floor_url = Some(v().trim_end_matches('/').to_string()),
            "--floor-pid" => o.floor_pid = Some(num(v()) as u32),
            "--host-bin" => o.host_bin = Some(v().into()),
            "--page-runs" => o.page_runs = num(v()).max(1) as u32,
            "--only" => o.only = Some(v()),
            "--stores" => match v().as_str() {
                "postgres" => o.postgres = true,
                "embedded" => o.postgres = false,
                other => die(&format!("--stores: `postgres` or `embedded`, not {other}")),
            },
            "--variable" => {
                let pair = v();
                let (k, val) = pair.split_once('=').unwrap_or_else(|| die("--variable expects k=v"));
                o.variables.push((k.to_string(), val.to_string()));
            }
            // A few seconds end to end: CI runs this so the script cannot rot.
            "--smoke" => {
                o.duration = 1;
                o.connections = 4;
                o.rounds = 1;
                o.pending = 20;
                o.workers = vec![2];
                o.page_runs = 1;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => die(&format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if o.base_url.is_some() != o.bare_url.is_some() {
        die("--base-url and --bare-url go together: the ratios need a bare component on the same host");
    }
    if o.floor_url.is_some() && o.base_url.is_none() {
        die("--floor-url goes with --base-url and --bare-url: without them the benchmark starts its own floor");
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("bench: {msg}");
    std::process::exit(2)
}

/// Where `spin.toml` is: the workspace, or `SHOP_BENCH_APP_DIR` (to compare
/// against a copy of an older build).
fn workspace_root() -> PathBuf {
    std::env::var_os("SHOP_BENCH_APP_DIR").map(PathBuf::from).unwrap_or_else(api_tests::workspace_root)
}

/// A host process started by the benchmark, killed on drop.
struct HostProcess {
    child: Child,
    url: String,
    _state: PathBuf,
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("SHOP_BENCH_KEEP_STATE").is_none() {
            let _ = std::fs::remove_dir_all(&self._state);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or_else(|e| die(&e.to_string()))
}

/// `wal_key_value`: embedded key-value labels to prepare as scripts/run.sh does.
fn start_host(bin: &Path, name: &str, manifest: &Path, runtime_config: Option<&Path>, variables: &[(String, String)], wal_key_value: &[&str]) -> HostProcess {
    let port = free_port();
    let state = std::env::temp_dir().join(format!("shop-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap_or_else(|e| die(&format!("state dir: {e}")));
    // As scripts/run.sh prepares them, where the test host keeps each label.
    for label in wal_key_value {
        match shop_test_host::prepare_in_wal_mode(&state, label) {
            Ok(mode) if mode == "wal" => {}
            other => die(&format!("key-value store {label}: not in WAL mode ({other:?})")),
        }
    }
    let mut cmd = Command::new(bin);
    cmd.arg("--manifest").arg(manifest).arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--state-dir").arg(&state);
    if let Some(rc) = runtime_config {
        cmd.arg("--runtime-config-file").arg(rc);
    }
    for (k, v) in variables {
        cmd.arg("--variable").arg(format!("{k}={v}"));
    }
    let log = std::fs::File::create(state.join("host.log")).unwrap_or_else(|e| die(&e.to_string()));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| die(&format!("starting {}: {e}", bin.display())));
    let url = format!("http://127.0.0.1:{port}");
    let mut host = HostProcess { child, url, _state: state };
    let deadline = Instant::now() + StdDuration::from_secs(300);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = host.child.try_wait() {
            let log = std::fs::read_to_string(host._state.join("host.log")).unwrap_or_default();
            die(&format!("{name} host exited ({status}):\n{log}"));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return host;
        }
        std::thread::sleep(StdDuration::from_millis(50));
    }
    die(&format!("{name} host did not start listening"));
}

/// What `wrk --latency` reported.
#[derive(Debug, Clone, Default)]
struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// Requests (orders, for the order loop) completed, errors included.
    done: u64,
    /// CPU time the serving host process used per request (per order for
    /// the order loop), in µs, when its pid is known.
    cpu_us: Option<f64>,
}

/// The CPU time (user + system, every thread) `pid` has used, in seconds,
/// from `/proc/<pid>/stat`. Only the host process: not wrk, not this
/// driver, not a Postgres or Redis server.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after `)`.
    let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Run `load` and add the CPU time `pid` spent on it per completed request.
fn with_cpu(pid: Option<u32>, load: impl FnOnce() -> WrkResult) -> WrkResult {
    let before = pid.and_then(cpu_seconds);
    let mut r = load();
    let after = pid.and_then(cpu_seconds);
    if let (Some(b), Some(a)) = (before, after) {
        if r.done > 0 {
            r.cpu_us = Some((a - b) * 1e6 / r.done as f64);
        }
    }
    r
}

fn parse_duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|n| n * scale)
}

fn parse_wrk(out: &str) -> WrkResult {
    let mut r = WrkResult::default();
    for line in out.lines() {
        let t = line.trim();
        if let Some((n, _)) = t.split_once(" requests in ") {
            r.done = n.trim().parse().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            r.p50_ms = parse_duration_ms(v).unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("99%") {
            r.p99_ms = parse_duration_ms(v).unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            r.errors += v.split(',').filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok()).sum::<u64>();
        }
    }
    r
}

fn wrk(o: &Options, url: &str, headers: &[(&str, &str)]) -> WrkResult {
    let mut cmd = Command::new("wrk");
    cmd.arg("-t2")
        .arg(format!("-c{}", o.connections))
        .arg(format!("-d{}s", o.duration))
        .arg("--latency")
        .arg("--timeout")
        .arg("10s");
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd.arg(url).output().unwrap_or_else(|e| die(&format!("running wrk (apt-get install wrk): {e}")));
    if !out.status.success() {
        die(&format!("wrk failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// `workers` new customers' access tokens, one per order-loop worker.
/// Signed up before the loop, so their Argon2 hashes are not counted in it.
fn customers(app: &TestApp, workers: u32) -> Vec<String> {
    (0..workers)
        .map(|_| {
            let email = unique_email("bench-buyer");
            let r = app.register(json!({ "email": email, "password": STRONG_PASSWORD, "first_name": "B", "last_name": "Buyer" }));
            assert_eq!(r.status, 201, "register: {}", r.body);
            app.sign_in(&email, STRONG_PASSWORD).access_token
        })
        .collect()
}

/// Closed-loop order placement: each worker is its own customer (`users`:
/// their access tokens, from [`customers`]).
fn orders(o: &Options, app: &Arc<TestApp>, product: &str, users: Vec<String>) -> WrkResult {
    let workers = users.len();
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let start = Instant::now();
    let handles: Vec<_> = users
        .into_iter()
        .map(|token| {
            let (app, stop, latencies, errors, first_error) = (app.clone(), stop.clone(), latencies.clone(), errors.clone(), first_error.clone());
            let product = product.to_string();
            std::thread::spawn(move || {
                let auth = format!("Bearer {token}");
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let t = Instant::now();
                    let add = app.request("POST", "/api/cart/items", &[("authorization", &auth)], Some(&json!({ "product_id": product, "quantity": 1 })));
                    let ok = if add.status == 200 {
                        let key = format!("bench-{}-{n}", &token[token.len() - 12..]);
                        let placed = app.request("POST", "/api/orders", &[("authorization", &auth), ("idempotency-key", &key)], None);
                        if placed.status == 201 {
                            true
                        } else {
                            first_error.lock().unwrap().get_or_insert(format!("POST /api/orders {}: {}", placed.status, placed.body));
                            false
                        }
                    } else {
                        first_error.lock().unwrap().get_or_insert(format!("POST /api/cart/items {}: {}", add.status, add.body));
                        false
                    };
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    if ok {
                        latencies.lock().unwrap().push(ms);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(StdDuration::from_secs(o.duration));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(e) = first_error.lock().unwrap().as_ref() {
        eprintln!("bench: first order error at {workers} workers: {e}");
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| if l.is_empty() { 0.0 } else { l[(((l.len() as f64) * p).ceil() as usize).clamp(1, l.len()) - 1] };
    let errors = errors.load(Ordering::Relaxed);
    WrkResult { rps: l.len() as f64 / elapsed, p50_ms: pct(0.50), p99_ms: pct(0.99), errors, done: l.len() as u64 + errors, cpu_us: None }
}

/// The label `--only` matches to run the page budget alone.
const PAGE_BUDGET: &str = "page budget";

/// The storefront's page budget (README, "The storefront's page budget"),
/// measured on the shop just benchmarked: `runs` first loads of `/` in
/// Debian's headless Chromium by `tests/browser/budget.mjs`, whose table is
/// printed as it is. Without Chromium, Node or the npm packages
/// (`scripts/bench.sh` installs those when Node is there) the table says
/// why it is missing; a measurement over the budget, or one that could not
/// run, is an error (the benchmark then exits 1, after its hosts stop).
fn page_budget(root: &Path, shop_url: &str, runs: u32) -> Result<(), String> {
    let chromium = std::env::var("SHOP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = if !Path::new(&chromium).exists() {
        Some(format!("{chromium} not found (apt-get install chromium)"))
    } else if !root.join("tests/browser/node_modules/playwright-core").exists() {
        Some("the npm packages are not installed (Node 20+, then `npm ci` in tests/browser)".into())
    } else {
        None
    };
    if let Some(why) = missing {
        println!("{PAGE_BUDGET}: not measured: {why}");
        return Ok(());
    }
    println!("storefront {PAGE_BUDGET} (`tests/browser/budget.mjs`: {runs} first load(s) of `/` in headless Chromium, fresh profile each):");
    println!();
    let out = Command::new("node")
        .arg(root.join("tests/browser/budget.mjs"))
        .args(["--base-url", shop_url, "--runs", &runs.to_string()])
        .env("SHOP_CHROMIUM", &chromium)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("over the budget, or the measurement failed ({})", out.status))
    }
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A 20-product id to read, the product the order loop buys, a guest
/// cart token with three lines, and a signed-in customer with the same cart.
struct Fixture {
    product_id: String,
    buy_id: String,
    cart_token: String,
    admin_token: String,
    /// Signs in again before each round: access tokens live 15 minutes.
    customer: TestUser,
}

fn prepare(app: &TestApp) -> Fixture {
    let admin = app.admin();
    let listing = app.get_path("/api/products?limit=100");
    assert_eq!(listing.status, 200, "{}", listing.body);
    let products: Vec<Value> = listing.json()["products"].as_array().cloned().unwrap_or_default();
    let usd: Vec<&Value> = products.iter().filter(|p| p["price"]["currency"] == "USD").collect();
    assert!(usd.len() >= 4, "the demo catalog is needed (demo_catalog=true)");
    // Plenty of stock everywhere, so neither pending orders nor the order
    // loop ever run out.
    for p in &products {
        let id = p["id"].as_str().unwrap();
        let r = app.send_as(&admin.access_token, "PUT", &format!("/api/products/{id}/inventory"), Some(&json!({ "stock_on_hand": 100_000_000 })));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut token = None::<String>;
    for p in usd.iter().take(3) {
        let mut headers = vec![];
        if let Some(t) = &token {
            headers.push(("x-cart-token", t.as_str()));
        }
        let r = app.request("POST", "/api/cart/items", &headers, Some(&json!({ "product_id": p["id"], "quantity": 1 })));
        assert_eq!(r.status, 200, "{}", r.body);
        token = r.header("x-cart-token").map(str::to_string).or(token);
    }
    let customer = app.register_customer();
    for p in usd.iter().take(3) {
        let r = app.send_as(&customer.access_token, "POST", "/api/cart/items", Some(&json!({ "product_id": p["id"], "quantity": 1 })));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    Fixture {
        customer,
        product_id: usd[0]["id"].as_str().unwrap().to_string(),
        buy_id: usd[3]["id"].as_str().unwrap().to_string(),
        cart_token: token.expect("the cart answers with a cart token"),
        admin_token: admin.access_token,
    }
}

/// Hold stock for `n` orders that nobody pays (the state a busy shop is in).
fn add_pending(app: &Arc<TestApp>, fx: &Fixture, products: &[String], n: u32) {
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let tag = std::process::id();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (app, next, products, admin) = (app.clone(), next.clone(), products.to_vec(), fx.admin_token.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let lines: Vec<Value> = (0..2).map(|k| json!({ "product_id": products[(i as usize + k) % products.len()], "quantity": 1 })).collect();
                let body = json!({ "order_id": format!("bench-pending-{tag}-{i}"), "lines": lines, "ttl_seconds": 86_400 });
                // A kept-alive connection the server just closed fails the
                // request; a hold is idempotent per order id, so try again.
                let r = (0..3)
                    .find_map(|_| {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            app.send_as(&admin, "POST", "/api/inventory/reservations", Some(&body))
                        }))
                        .ok()
                    })
                    .expect("reservation request failed three times");
                assert!(r.status == 201 || r.status == 200, "reservation: {} {}", r.status, r.body);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("pending-order loader");
    }
}

fn main() {
    let o = parse_args();
    let root = workspace_root();
    let keys = Ed25519KeyPair::generate();
    let host_bin = o.host_bin.clone().unwrap_or_else(|| {
        std::env::current_exe().ok().and_then(|e| Some(e.parent()?.join("shop-test-host"))).unwrap_or_else(|| die("cannot locate shop-test-host"))
    });

    let mut hosts = Vec::new();
    let mut servers_kept: Option<api_tests::ServerStores> = None;
    // Where the shop's local mail log is (the bootstrap admin's verification
    // link is read from it): ours, or `spin up`'s in `.spin/logs`.
    let mut shop_mail_log = Some(root.join(".spin").join("logs").join("notifications_stdout.txt"));
    let (shop_url, bare_url, shop_pid, bare_pid, floor) = match (&o.base_url, &o.bare_url) {
        (Some(s), Some(b)) => (s.clone(), b.clone(), o.shop_pid, o.bare_pid, o.floor_url.clone().map(|u| (u, o.floor_pid))),
        _ => {
            let vars: Vec<(String, String)> = [
                ("demo_catalog", "true".to_string()),
                ("admin_emails", ADMIN_EMAIL.to_string()),
                ("jwt_private_key", STANDARD.encode(keys.to_der())),
                ("jwt_public_key", STANDARD.encode(keys.public_key().to_der())),
                // The order loops sign up a customer per worker, from one address.
                ("registrations_per_client", "1000000".to_string()),
                ("password_checks_per_client", "1000000".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(o.variables.iter().cloned())
            .collect();
            let (vars, runtime_config) = if o.postgres {
                let servers = api_tests::ServerStores::start();
                let mut vars = vars;
                vars.extend(servers.variables_unless(|k| o.variables.iter().any(|(e, _)| e == k)).into_iter().map(|(k, v)| (k.to_string(), v.to_string())));
                let rc = servers.runtime_config.clone();
                servers_kept = Some(servers);
                (vars, rc)
            } else {
                (vars, root.join("runtime-config.toml"))
            };
            let bare = start_host(&host_bin, "bare", &root.join("tests/fixtures/bare/spin.toml"), None, &[], &[]);
            // Its store where the shop's key-value stores are: an embedded
            // file prepared as theirs are, or the same Redis server.
            let floor_config = servers_kept.as_ref().map(|servers| {
                let path = std::env::temp_dir().join(format!("shop-bench-floor-{}.toml", std::process::id()));
                let url = servers.redis.url();
                let config = format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{}/2\"\n", url.trim_end_matches('/'));
                std::fs::write(&path, config).unwrap_or_else(|e| die(&format!("floor runtime config: {e}")));
                path
            });
            let floor_stores: &[&str] = if o.postgres { &[] } else { &["default"] };
            let floor = start_host(&host_bin, "floor", &root.join("tests/fixtures/kv-read/spin.toml"), floor_config.as_deref(), &[], floor_stores);
            // Read when the host started, which it has once it listens.
            if let Some(path) = &floor_config {
                let _ = std::fs::remove_file(path);
            }
            // Embedded stores as scripts/run.sh prepares them; on Redis there is nothing to prepare.
            let wal_key_value: &[&str] = if o.postgres { &[] } else { &["carts", "catalog_cache"] };
            let shop = start_host(&host_bin, "shop", &root.join("spin.toml"), Some(&runtime_config), &vars, wal_key_value);
            shop_mail_log = Some(shop._state.join("logs").join("notifications_stdout.txt"));
            let r = (shop.url.clone(), bare.url.clone(), Some(shop.child.id()), Some(bare.child.id()), Some((floor.url.clone(), Some(floor.child.id()))));
            hosts.push(bare);
            hosts.push(floor);
            hosts.push(shop);
            r
        }
    };
    let mut app = TestApp::connect(shop_url.clone(), keys);
    app.mail_log = shop_mail_log;
    let app = Arc::new(app);
    let fx = prepare(&app);
    let all_ids: Vec<String> = app.all_products("").iter().filter_map(|p| p["id"].as_str().map(str::to_string)).collect();

    // (label, results per round, is_order_loop)
    let mut rows: Vec<(String, Vec<WrkResult>, Vec<f64>)> = Vec::new();
    let record = |rows: &mut Vec<(String, Vec<WrkResult>, Vec<f64>)>, label: String, r: WrkResult, bare: f64| {
        if let Some(row) = rows.iter_mut().find(|(l, _, _)| *l == label) {
            row.1.push(r);
            row.2.push(bare);
        } else {
            rows.push((label, vec![r], vec![bare]));
        }
    };
    let listing = format!("{shop_url}/api/products?limit=20");
    let product = format!("{shop_url}/api/products/{}", fx.product_id);
    let search = format!("{shop_url}/api/products?q=wire&limit=20");
    let cart = format!("{shop_url}/api/cart");
    let wanted = |label: &str| o.only.as_deref().is_none_or(|only| label.contains(only));
    let mut pending_loaded = false;
    for round in 0..o.rounds {
        eprintln!("bench: round {} of {}", round + 1, o.rounds);
        let bare = with_cpu(bare_pid, || wrk(&o, &format!("{bare_url}/"), &[]));
        let b = bare.rps;
        record(&mut rows, "bare component `{\"ok\":true}`".into(), bare, b);
        let label = "floor: the bare component reading one key-value value (`open` + `get`, 530 B)";
        if let (Some((url, pid)), true) = (&floor, wanted(label)) {
            record(&mut rows, label.to_string(), with_cpu(*pid, || wrk(&o, &format!("{url}/"), &[])), b);
        }
        let customer = format!("Bearer {}", app.sign_in(&fx.customer.email, &fx.customer.password).access_token);
        let reads: [(&str, &str, Vec<(&str, &str)>); 5] = [
            ("`GET /api/products?limit=20`, 0 pending orders", &listing, vec![]),
            ("`GET /api/products/{id}`", &product, vec![]),
            ("`GET /api/products?q=wire&limit=20`", &search, vec![]),
            ("`GET /api/cart`, 3 lines", &cart, vec![("x-cart-token", fx.cart_token.as_str())]),
            ("`GET /api/cart`, 3 lines, signed in", &cart, vec![("authorization", customer.as_str())]),
        ];
        for (label, url, headers) in &reads {
            if wanted(label) {
                record(&mut rows, label.to_string(), with_cpu(shop_pid, || wrk(&o, url, headers)), b);
            }
        }
        for &w in &o.workers {
            let label = format!("order placement, {w} workers (orders/s)");
            if wanted(&label) {
                let users = customers(&app, w);
                record(&mut rows, label, with_cpu(shop_pid, || orders(&o, &app, &fx.buy_id, users)), b);
            }
        }
        let label = format!("`GET /api/products?limit=20`, {} pending orders", o.pending);
        if wanted(&label) {
            if !pending_loaded {
                // Loaded once: from here on every round sees them.
                eprintln!("bench: holding stock for {} pending orders", o.pending);
                add_pending(&app, &fx, &all_ids, o.pending);
                pending_loaded = true;
            }
            record(&mut rows, label, with_cpu(shop_pid, || wrk(&o, &listing, &[])), b);
        }
    }

    println!("stores: {}", if o.postgres { "Postgres (every service database) and Redis (carts, catalog cache, the floor's store)" } else { "embedded (SQLite files, key-value files)" });
    println!();
    println!("| scenario | req/s (per round) | p50 | p99 | errors | ratio to bare | host CPU per request |");
    println!("|---|---|---|---|---|---|---|");
    for (label, results, bares) in &rows {
        let rps: Vec<String> = results.iter().map(|r| format!("{:.0}", r.rps)).collect();
        let ratios: Vec<String> = results.iter().zip(bares).map(|(r, b)| if *b > 0.0 { format!("{:.0} %", 100.0 * r.rps / b) } else { "–".into() }).collect();
        let p50: Vec<String> = results.iter().map(|r| format!("{:.1} ms", r.p50_ms)).collect();
        let p99: Vec<String> = results.iter().map(|r| format!("{:.1} ms", r.p99_ms)).collect();
        let errors: u64 = results.iter().map(|r| r.errors).sum();
        let cpu: Vec<String> = results.iter().map(|r| r.cpu_us.map(|us| format!("{us:.0} µs")).unwrap_or_else(|| "–".into())).collect();
        println!("| {label} | {} | {} | {} | {errors} | {} | {} |", rps.join(" / "), p50.join(" / "), p99.join(" / "), ratios.join(" / "), cpu.join(" / "));
    }
    let mem = |pid: Option<u32>| pid.and_then(rss_mb).map(|m| format!("{m:.0} MB")).unwrap_or_else(|| "not measured".into());
    println!();
    println!("| resident memory after the run | shop | bare component | floor |");
    println!("|---|---|---|---|");
    println!("| host process | {} | {} | {} |", mem(shop_pid), mem(bare_pid), mem(floor.as_ref().and_then(|(_, pid)| *pid)));
    let budget = if wanted(PAGE_BUDGET) {
        println!();
        page_budget(&root, &shop_url, o.page_runs)
    } else {
        Ok(())
    };
    drop(hosts);
    drop(servers_kept);
    if let Err(e) = budget {
        eprintln!("bench: {PAGE_BUDGET}: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_s_summary() {
        let out = "Running 10s test @ http://127.0.0.1:1/\n  2 threads and 32 connections\n  Latency Distribution\n     50%    5.40ms\n     99%   30.10ms\n  52160 requests in 10.00s, 40.1MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:   5216.00\n";
        let r = parse_wrk(out);
        assert_eq!(r.done, 52160);
        assert_eq!(r.errors, 3);
        assert!((r.rps - 5216.0).abs() < 1e-9 && (r.p50_ms - 5.4).abs() < 1e-9 && (r.p99_ms - 30.1).abs() < 1e-9);
    }

    #[test]
    fn counts_this_process_s_cpu_time() {
        let pid = std::process::id();
        let before = cpu_seconds(pid).expect("readable /proc/self/stat");
        // Work until the count moves (a clock tick of CPU time), however busy the machine.
        let started = Instant::now();
        let mut x = 0u64;
        while cpu_seconds(pid).unwrap() <= before {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            assert!(started.elapsed() < StdDuration::from_secs(60), "CPU time never moved");
        }
        std::hint::black_box(x);
        let r = with_cpu(Some(pid), || WrkResult { done: 0, ..Default::default() });
        assert_eq!(r.cpu_us, None, "no requests, no figure");
    }
}
