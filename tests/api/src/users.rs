//! Account steps: register, sign in, act as a user or an admin, forge tokens.

use crate::{ApiResponse, TestApp, ADMIN_EMAIL, SWEEP_SECRET};
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};

/// A password that passes the policy.
pub const STRONG_PASSWORD: &str = "correct horse battery staple";

/// An email no other test (or earlier run against a persistent app) uses.
pub fn unique_email(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{tag}-{}-{nanos}-{}@example.test", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A signed-in account.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    /// `POST /api/auth/register` with any body.
    pub fn register(&self, body: Value) -> ApiResponse {
        self.request("POST", "/api/auth/register", &[], Some(&body))
    }

    /// `POST /api/auth/login`.
    pub fn login(&self, email: &str, password: &str) -> ApiResponse {
        self.request("POST", "/api/auth/login", &[], Some(&json!({ "email": email, "password": password })))
    }

    /// `POST /api/auth/refresh`.
    pub fn refresh(&self, refresh_token: &str) -> ApiResponse {
        self.request("POST", "/api/auth/refresh", &[], Some(&json!({ "refreshToken": refresh_token })))
    }

    /// Sign in and return the session.
    pub fn sign_in(&self, email: &str, password: &str) -> TestUser {
        let r = self.login(email, password);
        assert_eq!(r.status, 200, "login {email}: {}", r.body);
        let v = r.json();
        TestUser {
            id: v["user"]["id"].as_str().unwrap().to_string(),
            email: email.to_string(),
            password: password.to_string(),
            access_token: v["accessToken"].as_str().unwrap().to_string(),
            refresh_token: v["refreshToken"].as_str().unwrap().to_string(),
        }
    }

    /// A new customer, registered and signed in.
    pub fn register_customer(&self) -> TestUser {
        let email = unique_email("customer");
        let r = self.register(json!({
            "email": email, "password": STRONG_PASSWORD, "first_name": "Casey", "last_name": "Customer",
        }));
        assert_eq!(r.status, 201, "register: {}", r.body);
        self.sign_in(&email, STRONG_PASSWORD)
    }

    /// The bootstrap admin (from `admin_emails`): registered and its
    /// address verified on first use, which is what makes it an admin.
    pub fn admin(&self) -> TestUser {
        static BOOTSTRAPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let mut done = BOOTSTRAPPED.lock().unwrap_or_else(|e| e.into_inner());
        // By address and signing key: a host of a test's own that stopped
        // can leave its port to the next one, a new app (found in review).
        let app = format!("{} {:?}", self.base_url(), self.signing_key.public_key().to_bytes());
        if !done.contains(&app) {
            let r = self.register(json!({
                "email": ADMIN_EMAIL, "password": STRONG_PASSWORD, "first_name": "Ada", "last_name": "Admin",
            }));
            assert!(r.status == 201 || r.status == 409, "admin register: {}", r.body);
            let first = self.sign_in(ADMIN_EMAIL, STRONG_PASSWORD);
            let me = self.send_as(&first.access_token, "GET", "/api/users/profile", None).json();
            if me["user"]["role"] != "admin" {
                if r.status != 201 {
                    // Registered by an earlier run whose email is gone: ask again.
                    let again = self.send_as(&first.access_token, "POST", "/api/auth/verify-email/resend", None);
                    assert_eq!(again.status, 202, "{}", again.body);
                }
                // Signed in: the admin_emails rule needs the account's own session.
                self.verify_email_as(&first, ADMIN_EMAIL);
            }
            done.push(app);
        }
        self.sign_in(ADMIN_EMAIL, STRONG_PASSWORD)
    }

    /// Deliver due emails now (the notifications sweep).
    pub fn deliver_emails(&self) {
        let r = self.request("POST", "/api/notifications/sweep", &[("x-sweep-secret", SWEEP_SECRET)], None);
        assert_eq!(r.status, 200, "sweep: {}", r.body);
    }

    /// The token in the newest link email of this event type to `email`, as
    /// the fake Resend (or the local mail log) got it. For
    /// `user.verification_requested` the welcome email counts too: it
    /// carries the first link.
    pub fn emailed_token(&self, email: &str, event_type: &str) -> String {
        self.emailed_tokens(email, event_type, 1).pop().expect("a token")
    }

    /// The tokens of the first `n` link emails of this type to `email`, oldest first.
    pub fn emailed_tokens(&self, email: &str, event_type: &str, n: usize) -> Vec<String> {
        // The first verification link comes in the welcome email.
        let kinds: Vec<&str> = if event_type == "user.verification_requested" { vec!["user.registered", event_type] } else { vec![event_type] };
        let carries = |key: &str| kinds.iter().any(|k| key.starts_with(&format!("{k}/")));
        for _ in 0..100 {
            let mut tokens: Vec<String> = self
                .resend
                .to(email)
                .iter()
                .filter(|c| carries(c.idempotency_key()))
                .filter_map(|c| link_token(c.body["text"].as_str().unwrap_or("")))
                .collect();
            if let Some(path) = &self.mail_log {
                // `{"mail_log": {"event_type", "idempotency_key", "to", "subject", "text"}}` lines.
                let log = std::fs::read_to_string(path).unwrap_or_default();
                tokens.extend(
                    log.lines()
                        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                        .map(|v| v["mail_log"].clone())
                        .filter(|m| m["to"] == email && kinds.iter().any(|k| m["event_type"] == *k))
                        .filter_map(|m| link_token(m["text"].as_str().unwrap_or(""))),
                );
            }
            if tokens.len() >= n {
                return tokens;
            }
            self.deliver_emails();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("no {n} `{event_type}` emails to {email}: {:?}", self.resend.to(email));
    }

    /// Use the newest verification link sent to `email`.
    pub fn verify_email(&self, email: &str) -> Value {
        let token = self.emailed_token(email, "user.verification_requested");
        let r = self.request("POST", "/api/auth/verify-email", &[], Some(&json!({ "token": token })));
        assert_eq!(r.status, 200, "verify {email}: {}", r.body);
        r.json()
    }

    /// [`Self::verify_email`] from a browser signed in as `user` (its
    /// access token goes along, as the storefront sends it).
    pub fn verify_email_as(&self, user: &TestUser, email: &str) -> Value {
        let token = self.emailed_token(email, "user.verification_requested");
        let r = self.send_as(&user.access_token, "POST", "/api/auth/verify-email", Some(&json!({ "token": token })));
        assert_eq!(r.status, 200, "verify {email}: {}", r.body);
        r.json()
    }

    /// A request with a bearer token.
    pub fn send_as(&self, token: &str, method: &str, path: &str, body: Option<&Value>) -> ApiResponse {
        let auth = format!("Bearer {token}");
        self.request(method, path, &[("authorization", &auth)], body)
    }

    /// Sign claims with the app's own key, for tokens the app must still
    /// refuse (expired, wrong audience or issuer).
    pub fn forge_token(&self, user_id: &str, role: &str, audience: &str, issuer: &str, valid_for_secs: i64) -> String {
        let now = Clock::now_since_epoch();
        let mut claims = Claims::with_custom_claims(json!({ "role": role }), Duration::from_secs(60))
            .with_subject(user_id)
            .with_issuer(issuer)
            .with_audience(audience)
            .with_jwt_id("forged");
        if valid_for_secs < 0 {
            claims.issued_at = Some(now - Duration::from_secs(20 * 60));
            claims.expires_at = Some(now - Duration::from_secs((-valid_for_secs) as u64));
        }
        self.signing_key.sign(claims).expect("sign")
    }
}

/// The `token=` value of the link in an email's text.
pub fn link_token(text: &str) -> Option<String> {
    let start = text.find("?token=")? + "?token=".len();
    Some(text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect())
}

/// A raw HTTP/1.1 exchange from a chosen loopback source address, so a test
/// can act as a different client (per-client rate limits). Returns the
/// status and headers.
pub fn post_from(source_ip: std::net::Ipv4Addr, base_url: &str, path: &str, json_body: &str) -> (u16, Vec<(String, String)>) {
    post_from_with(source_ip, base_url, path, json_body, &[])
}

/// [`post_from`] with more request headers.
pub fn post_from_with(source_ip: std::net::Ipv4Addr, base_url: &str, path: &str, json_body: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>) {
    use socket2::{Domain, Socket, Type};
    use std::io::{Read, Write};
    let hostport = base_url.trim_start_matches("http://");
    let target: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .expect("resolve")
        .next()
        .expect("address");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.bind(&std::net::SocketAddr::from((source_ip, 0)).into()).expect("bind source address");
    socket.connect(&target.into()).expect("connect");
    let mut stream: std::net::TcpStream = socket.into();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{json_body}",
        json_body.len()
    );
    stream.write_all(req.as_bytes()).expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let mut lines = raw.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    (status, headers)
}
