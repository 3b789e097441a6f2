//! Accounts, sessions, tokens and roles, over HTTP only.

use api_tests::{post_from_with, unique_email, TestApp, ADMIN_EMAIL, STRONG_PASSWORD};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::json;

fn body(email: &str, password: &str) -> serde_json::Value {
    json!({ "email": email, "password": password, "first_name": "Ann", "last_name": "Lee" })
}

// ---------------------------------------------------------------- register

#[test]
fn registering_returns_the_user_and_never_its_secrets() {
    let app = TestApp::get();
    let email = unique_email("Reg");
    let r = app.register(body(&format!("  {email} "), STRONG_PASSWORD));
    assert_eq!(r.status, 201, "{}", r.body);
    let u = r.json()["user"].clone();
    assert_eq!(u["email"], email.to_lowercase());
    assert_eq!(u["role"], "customer");
    assert_eq!((u["first_name"].as_str(), u["last_name"].as_str()), (Some("Ann"), Some("Lee")));
    for field in ["id", "created_at"] {
        assert!(u[field].is_string(), "{field}");
    }
    assert!(!r.body.contains("argon2") && !r.body.contains(STRONG_PASSWORD) && !r.body.contains("password"));
}

#[test]
fn emails_are_unique_whatever_their_case_or_spacing() {
    let app = TestApp::get();
    let email = unique_email("dup");
    assert_eq!(app.register(body(&email, STRONG_PASSWORD)).status, 201);
    app.register(body(&email.to_uppercase(), STRONG_PASSWORD)).assert_error(409, "email_taken");
    app.register(body(&format!(" {email}\t"), STRONG_PASSWORD)).assert_error(409, "email_taken");
}

#[test]
fn a_role_in_the_body_grants_nothing() {
    let app = TestApp::get();
    let mut b = body(&unique_email("sneaky"), STRONG_PASSWORD);
    b["role"] = json!("admin");
    let r = app.register(b);
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["user"]["role"], "customer");
}

#[test]
fn the_password_policy_says_why() {
    let app = TestApp::get();
    for (password, words) in [
        ("short", "at least 10"),
        ("password123", "common"),
        ("QWERTYUIOP", "common"),
    ] {
        let r = app.register(body(&unique_email("pw"), password));
        let v = r.assert_error(422, "validation_failed");
        let why = v["error"]["details"]["fields"]["password"].as_str().unwrap_or_default();
        assert!(why.contains(words), "{password}: {why}");
    }
    let long = "x".repeat(257);
    app.register(body(&unique_email("pw"), &long)).assert_error(422, "validation_failed");
    let email = unique_email("self");
    app.register(body(&email, &email)).assert_error(422, "validation_failed");
}

#[test]
fn bad_registrations_get_clear_errors() {
    let app = TestApp::get();
    let v = app
        .register(json!({ "email": "not-an-email", "password": STRONG_PASSWORD, "first_name": "", "last_name": "L" }))
        .assert_error(422, "validation_failed");
    let fields = &v["error"]["details"]["fields"];
    assert!(fields["email"].is_string() && fields["first_name"].is_string(), "{v}");
    app.register(json!({})).assert_error(422, "validation_failed");
    app.request_raw("POST", "/api/auth/register", &[("content-type", "application/json")], b"{\"email\":".to_vec())
        .assert_error(400, "invalid_json");
    app.request_raw("POST", "/api/auth/register", &[("content-type", "text/plain")], b"hello".to_vec())
        .assert_error(415, "unsupported_media_type");
    let huge = format!("{{\"email\":\"{}\"}}", "a".repeat(70 * 1024));
    app.request_raw("POST", "/api/auth/register", &[("content-type", "application/json")], huge.into_bytes())
        .assert_error(413, "payload_too_large");
    app.request("GET", "/api/auth/register", &[], None).assert_error(405, "method_not_allowed");
}

// ---------------------------------------------------------------- login

#[test]
fn login_returns_a_bearer_pair_and_the_user() {
    let app = TestApp::get();
    let email = unique_email("login");
    app.register(body(&email, STRONG_PASSWORD));
    let r = app.login(&email.to_uppercase(), STRONG_PASSWORD);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(v["tokenType"], "Bearer");
    assert_eq!(v["expiresIn"], 900);
    assert_eq!(v["user"]["email"], email);
    let access = v["accessToken"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3);
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').nth(1).unwrap()).unwrap()).unwrap();
    for c in ["sub", "role", "iat", "exp", "iss", "aud", "jti"] {
        assert!(!claims[c].is_null(), "claim {c}: {claims}");
    }
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    assert!(v["refreshToken"].as_str().unwrap().len() > 32);
}

#[test]
fn wrong_credentials_get_one_generic_answer() {
    let app = TestApp::get();
    let email = unique_email("generic");
    app.register(body(&email, STRONG_PASSWORD));
    let wrong = app.login(&email, "not the password at all");
    let unknown = app.login(&unique_email("nobody"), "not the password at all");
    let a = wrong.assert_error(401, "invalid_credentials");
    let b = unknown.assert_error(401, "invalid_credentials");
    assert_eq!(a["error"]["message"], b["error"]["message"]);
    app.request("POST", "/api/auth/login", &[], Some(&json!({ "email": email }))).assert_error(400, "invalid_request");
}

#[test]
fn repeated_failures_for_one_email_are_rate_limited() {
    let app = TestApp::get();
    let email = unique_email("brute");
    app.register(body(&email, STRONG_PASSWORD));
    for _ in 0..5 {
        app.login(&email, "wrong password guess").assert_error(401, "invalid_credentials");
    }
    let r = app.login(&email, STRONG_PASSWORD);
    r.assert_error(429, "rate_limited");
    let retry: u64 = r.header("retry-after").expect("retry-after").parse().unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    // Other accounts are unaffected.
    app.register_customer();
}

/// Found in review: five wrong guesses from anyone locked the owner out
/// everywhere. The guessing client is stopped; the owner at another
/// address signs in.
#[test]
fn a_guesser_elsewhere_does_not_lock_the_owner_out() {
    let app = TestApp::get();
    let email = unique_email("targeted");
    app.register(body(&email, STRONG_PASSWORD));
    let octet = 2 + (std::process::id() % 250) as u8;
    let guesser = std::net::Ipv4Addr::new(127, 0, 4, octet);
    let guess = json!({ "email": email, "password": "a wrong guess" }).to_string();
    let statuses: Vec<u16> = (0..6).map(|_| post_from_with(guesser, app.base_url(), "/api/auth/login", &guess, &[]).0).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429], "the guessing client is stopped");
    let right = json!({ "email": email, "password": STRONG_PASSWORD }).to_string();
    assert_eq!(post_from_with(guesser, app.base_url(), "/api/auth/login", &right, &[]).0, 429, "from there, even with the password");
    assert_eq!(app.login(&email, STRONG_PASSWORD).status, 200, "the owner elsewhere signs in");
}

#[test]
fn repeated_failures_from_one_client_are_rate_limited() {
    let app = TestApp::get();
    // Act as our own client address so other tests are not affected.
    let octet = 2 + (std::process::id() % 250) as u8;
    let ip = std::net::Ipv4Addr::new(127, 0, 1, octet);
    let mut limited = None;
    let limit: u32 = api_tests::LOGIN_FAILURES_PER_CLIENT.parse().unwrap();
    for i in 0..limit + 10 {
        let login = format!(r#"{{"email":"{}","password":"wrong password {i}"}}"#, unique_email("spray"));
        // A client naming a new address of its own each time in Spin's
        // header (Spin passes the client's field on, before its own) is
        // still the one client (found in review: the first field was read).
        let claimed = format!("198.51.{}.{}:4000", i / 250, i % 250);
        let (status, headers) = post_from_with(ip, app.base_url(), "/api/auth/login", &login, &[("spin-client-addr", &claimed)]);
        if status == 429 {
            limited = Some(headers);
            break;
        }
        assert_eq!(status, 401);
    }
    let headers = limited.unwrap_or_else(|| panic!("the client was not limited within {} failures", limit + 10));
    assert!(headers.iter().any(|(k, _)| k == "retry-after"));
}

// ---------------------------------------------------------------- tokens on protected routes

#[test]
fn the_profile_needs_a_valid_token() {
    let app = TestApp::get();
    let user = app.register_customer();
    let ok = app.send_as(&user.access_token, "GET", "/api/users/profile", None);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["user"]["id"], user.id.as_str());
    assert!(!ok.body.contains("argon2") && !ok.body.contains("refresh"));

    app.get_path("/api/users/profile").assert_error(401, "unauthorized");
    app.request("GET", "/api/users/profile", &[("authorization", "Basic abc")], None).assert_error(401, "unauthorized");
    app.send_as("garbage", "GET", "/api/users/profile", None).assert_error(401, "unauthorized");

    // Tampered: same signature, edited payload.
    let mut parts: Vec<String> = user.access_token.split('.').map(str::to_string).collect();
    let mut payload: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["role"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    app.send_as(&parts.join("."), "GET", "/api/users/profile", None).assert_error(401, "unauthorized");

    // Expired, wrong audience, wrong issuer: signed with the real key, still refused.
    let expired = app.forge_token(&user.id, "customer", "shop-api", "shop", -120);
    app.send_as(&expired, "GET", "/api/users/profile", None).assert_error(401, "unauthorized");
    let audience = app.forge_token(&user.id, "customer", "another-api", "shop", 60);
    app.send_as(&audience, "GET", "/api/users/profile", None).assert_error(401, "unauthorized");
    let issuer = app.forge_token(&user.id, "customer", "shop-api", "evil", 60);
    app.send_as(&issuer, "GET", "/api/users/profile", None).assert_error(401, "unauthorized");
    let good = app.forge_token(&user.id, "customer", "shop-api", "shop", 60);
    assert_eq!(app.send_as(&good, "GET", "/api/users/profile", None).status, 200, "control: a well-formed token works");

    // alg: none.
    let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    app.send_as(&none, "GET", "/api/users/profile", None).assert_error(401, "unauthorized");

    // HS256 signed with the public key as the HMAC secret.
    let public_der = app.signing_key.public_key().to_der();
    for secret in [public_der.clone(), STANDARD.encode(&public_der).into_bytes()] {
        let claims = Claims::with_custom_claims(json!({ "role": "admin" }), Duration::from_secs(60))
            .with_subject(&user.id)
            .with_issuer("shop")
            .with_audience("shop-api")
            .with_jwt_id("confused");
        let hs = HS256Key::from_bytes(&secret).authenticate(claims).unwrap();
        app.send_as(&hs, "GET", "/api/users/profile", None).assert_error(401, "unauthorized");
    }
}

#[test]
fn profile_updates() {
    let app = TestApp::get();
    let user = app.register_customer();
    let r = app.send_as(&user.access_token, "PUT", "/api/users/profile", Some(&json!({ "first_name": "  Zoë " })));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"]["first_name"], "Zoë");
    assert_eq!(r.json()["user"]["last_name"], "Customer");
    let again = app.send_as(&user.access_token, "GET", "/api/users/profile", None).json();
    assert_eq!(again["user"]["first_name"], "Zoë");
    app.send_as(&user.access_token, "PUT", "/api/users/profile", Some(&json!({ "first_name": "" })))
        .assert_error(422, "validation_failed");
    app.send_as(&user.access_token, "PUT", "/api/users/profile", Some(&json!({ "email": "x@y.z" })))
        .assert_error(400, "invalid_json");
    app.send_as(&user.access_token, "PUT", "/api/users/profile", Some(&json!({}))).assert_error(400, "invalid_request");
    app.request("PUT", "/api/users/profile", &[], Some(&json!({ "first_name": "X" }))).assert_error(401, "unauthorized");
}

// ---------------------------------------------------------------- refresh, logout, password

#[test]
fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::get();
    let user = app.register_customer();
    let first = app.refresh(&user.refresh_token);
    assert_eq!(first.status, 200, "{}", first.body);
    let v = first.json();
    let rotated = v["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(rotated, user.refresh_token);
    let access = v["accessToken"].as_str().unwrap();
    assert_eq!(app.send_as(access, "GET", "/api/users/profile", None).status, 200);

    // The old token comes back (stolen copy): refused, and the whole session dies.
    app.refresh(&user.refresh_token).assert_error(401, "refresh_token_reused");
    app.refresh(&rotated).assert_error(401, "invalid_refresh_token");

    app.refresh("rt_unknown").assert_error(401, "invalid_refresh_token");
    app.request("POST", "/api/auth/refresh", &[], Some(&json!({}))).assert_error(400, "invalid_request");
}

#[test]
fn racing_refreshes_of_one_token_let_at_most_one_through() {
    let app = TestApp::get();
    let user = app.register_customer();
    let token = user.refresh_token.clone();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let token = token.clone();
            std::thread::spawn(move || TestApp::get().refresh(&token).status)
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(statuses.iter().filter(|s| **s == 200).count() <= 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "{statuses:?}");
}

#[test]
fn logout_ends_the_session() {
    let app = TestApp::get();
    let user = app.register_customer();
    let r = app.request("POST", "/api/auth/logout", &[], Some(&json!({ "refreshToken": user.refresh_token })));
    assert_eq!(r.status, 204, "{}", r.body);
    app.refresh(&user.refresh_token).assert_error(401, "invalid_refresh_token");
    let again = app.request("POST", "/api/auth/logout", &[], Some(&json!({ "refreshToken": user.refresh_token })));
    assert_eq!(again.status, 204, "logout is idempotent");
}

#[test]
fn changing_the_password_revokes_every_other_session() {
    let app = TestApp::get();
    let here = app.register_customer();
    let elsewhere = app.sign_in(&here.email, STRONG_PASSWORD);
    let new_password = "a much better passphrase";

    app.send_as(&here.access_token, "PUT", "/api/users/password",
        Some(&json!({ "current_password": "wrong wrong wrong", "new_password": new_password })))
        .assert_error(422, "current_password_incorrect");
    app.send_as(&here.access_token, "PUT", "/api/users/password",
        Some(&json!({ "current_password": STRONG_PASSWORD, "new_password": "short" })))
        .assert_error(422, "validation_failed");

    let r = app.send_as(&here.access_token, "PUT", "/api/users/password",
        Some(&json!({ "current_password": STRONG_PASSWORD, "new_password": new_password })));
    assert_eq!(r.status, 204, "{}", r.body);

    app.refresh(&elsewhere.refresh_token).assert_error(401, "invalid_refresh_token");
    assert_eq!(app.refresh(&here.refresh_token).status, 200, "this session lives on");
    app.login(&here.email, STRONG_PASSWORD).assert_error(401, "invalid_credentials");
    assert_eq!(app.login(&here.email, new_password).status, 200);
}

// ---------------------------------------------------------------- admin

#[test]
fn admin_endpoints_are_for_admins_only() {
    let app = TestApp::get();
    let customer = app.register_customer();
    app.get_path("/api/admin/users").assert_error(401, "unauthorized");
    app.send_as(&customer.access_token, "GET", "/api/admin/users", None).assert_error(403, "forbidden");
    app.send_as(&customer.access_token, "PUT", &format!("/api/admin/users/{}/role", customer.id), Some(&json!({ "role": "admin" })))
        .assert_error(403, "forbidden");
    // A customer cannot promote themselves with a forged role claim either (no key).
    let admin = app.admin();
    let me = app.send_as(&admin.access_token, "GET", "/api/users/profile", None).json();
    assert_eq!(me["user"]["role"], "admin");
    assert_eq!(me["user"]["email"], ADMIN_EMAIL);
}

#[test]
fn admins_list_and_search_users() {
    let app = TestApp::get();
    let admin = app.admin();
    let customer = app.register_customer();
    let r = app.send_as(&admin.access_token, "GET", &format!("/api/admin/users?email={}", customer.email.to_uppercase()), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["total"], 1);
    assert_eq!(v["users"][0]["id"], customer.id.as_str());
    assert!(!r.body.contains("argon2"));
    let page = app.send_as(&admin.access_token, "GET", "/api/admin/users?limit=2&page=1", None).json();
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    assert!(page["total"].as_i64().unwrap() >= 2);
    app.send_as(&admin.access_token, "GET", "/api/admin/users?limit=500", None).assert_error(400, "invalid_parameter");
    let none = app.send_as(&admin.access_token, "GET", "/api/admin/users?email=%25", None).json();
    assert_eq!(none["total"], 0, "search text is literal");
}

/// Found in review: a role change trusted the caller's access token, whose
/// role claim may be up to 15 minutes old, so two admins could demote each
/// other and leave the shop with none. The caller must be an admin now.
#[test]
fn a_demoted_admin_cannot_change_roles_with_the_token_it_still_holds() {
    let app = TestApp::get();
    let admin = app.admin();
    let promoted = |who: &api_tests::TestUser| {
        let r = app.send_as(&admin.access_token, "PUT", &format!("/api/admin/users/{}/role", who.id), Some(&json!({ "role": "admin" })));
        assert_eq!(r.status, 200, "{}", r.body);
        app.sign_in(&who.email, &who.password)
    };
    let (x, y) = (promoted(&app.register_customer()), promoted(&app.register_customer()));
    let r = app.send_as(&x.access_token, "PUT", &format!("/api/admin/users/{}/role", y.id), Some(&json!({ "role": "customer" })));
    assert_eq!(r.status, 200, "{}", r.body);
    // Y's token still says admin; the database does not.
    app.send_as(&y.access_token, "PUT", &format!("/api/admin/users/{}/role", x.id), Some(&json!({ "role": "customer" })))
        .assert_error(403, "forbidden");
    let x_now = app.send_as(&x.access_token, "GET", "/api/users/profile", None).json();
    assert_eq!(x_now["user"]["role"], "admin", "the admin who acted first is still one");
}

#[test]
fn admins_change_roles_and_the_next_refresh_carries_it() {
    let app = TestApp::get();
    let admin = app.admin();
    let user = app.register_customer();
    let path = format!("/api/admin/users/{}/role", user.id);
    let r = app.send_as(&admin.access_token, "PUT", &path, Some(&json!({ "role": "admin" })));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"]["role"], "admin");
    let refreshed = app.refresh(&user.refresh_token).json();
    let token = refreshed["accessToken"].as_str().unwrap();
    assert_eq!(app.send_as(token, "GET", "/api/admin/users?limit=1", None).status, 200);

    app.send_as(&admin.access_token, "PUT", &path, Some(&json!({ "role": "owner" }))).assert_error(422, "validation_failed");
    app.send_as(&admin.access_token, "PUT", "/api/admin/users/00000000-0000-4000-8000-000000000000/role", Some(&json!({ "role": "admin" })))
        .assert_error(404, "not_found");
    app.send_as(&admin.access_token, "PUT", &format!("/api/admin/users/{}/role", admin.id), Some(&json!({ "role": "customer" })))
        .assert_error(409, "cannot_change_own_role");
}
