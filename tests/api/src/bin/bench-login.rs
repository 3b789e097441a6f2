//! Login cost benchmark (README, "Benchmarks").
//!
//! Starts the real users component under the test host (rate limits lifted),
//! registers one account, then times sequential `POST /api/auth/login` calls:
//! with the right password, with a wrong one, and for an email that has no
//! account. The last two should cost the same as the first — the server
//! spends the Argon2id time either way so timing does not reveal accounts.
//!
//! Usage: `cargo run -p api-tests --bin bench-login [-- ROUNDS]` (default 30),
//! or `SHOP_BASE_URL=http://127.0.0.1:3000` to measure a real `spin up`
//! (start it with high `login_max_failures_*` variables).

use api_tests::{launch_host, unique_email, TestApp, STRONG_PASSWORD};
use jwt_simple::prelude::*;
use serde_json::json;
use std::time::{Duration as StdDuration, Instant};

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    let keys = Ed25519KeyPair::generate();
    let (_host, app) = match std::env::var("SHOP_BASE_URL") {
        Ok(url) if !url.is_empty() => (None, TestApp::connect(url, keys)),
        _ => {
            let lifted = [("login_max_failures_per_email", "1000000"), ("login_max_failures_per_email_and_client", "1000000"), ("login_max_failures_per_client", "1000000"), ("password_checks_per_client", "1000000")];
            let host = launch_host(&keys, &lifted);
            let url = host.base_url();
            (Some(host), TestApp::connect(url, keys))
        }
    };
    let email = unique_email("bench");
    let r = app.register(json!({ "email": email, "password": STRONG_PASSWORD, "first_name": "B", "last_name": "M" }));
    assert_eq!(r.status, 201, "{}", r.body);
    // Warm up: the first request compiles nothing (cached) but touches cold pages.
    app.login(&email, STRONG_PASSWORD);

    let cases: [(&str, Box<dyn Fn() -> u16>); 3] = [
        ("login, right password", Box::new(|| app.login(&email, STRONG_PASSWORD).status)),
        ("login, wrong password", Box::new(|| app.login(&email, "not the right password").status)),
        ("login, no such account", Box::new(|| app.login("nobody-here@example.test", "not the right password").status)),
    ];
    println!("| case | rounds | median | p95 | min | max |");
    println!("|---|---|---|---|---|---|");
    for (name, call) in &cases {
        let mut times: Vec<StdDuration> = (0..rounds)
            .map(|_| {
                let t = Instant::now();
                let status = call();
                assert!(status == 200 || status == 401, "{name}: status {status}");
                t.elapsed()
            })
            .collect();
        times.sort();
        let ms = |d: StdDuration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        let p95 = times[((rounds * 95).div_ceil(100)).saturating_sub(1).min(rounds - 1)];
        println!(
            "| {name} | {rounds} | {} | {} | {} | {} |",
            ms(times[rounds / 2]),
            ms(p95),
            ms(times[0]),
            ms(times[rounds - 1])
        );
    }
}
