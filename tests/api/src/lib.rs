//! `TestApp`: the shop as a black box, reached over HTTP only.
//!
//! By default the first test to ask for the app starts the Spin-compatible
//! test host (`tests/host`) once for the whole test binary, with the real
//! built components from `spin.toml`, a fresh state directory and the
//! variables below. When `SHOP_BASE_URL` is set (for example
//! `http://127.0.0.1:3000` for a real `spin up`), the same tests run against
//! that URL instead, unchanged. The app must then be started with the same
//! variables (see README.md, "Running the tests against real Spin").

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::Value;
use shop_test_host::{HostOptions, RunningHost};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Variables the suite expects the app to run with (besides the JWT keys).
pub const TEST_VARIABLES: &[(&str, &str)] = &[
    ("demo_catalog", "true"),
    ("cors_allowed_origins", "https://shop.example.test"),
    ("admin_emails", ADMIN_EMAIL),
    ("guest_cart_idle_ttl", GUEST_CART_TTL),
    ("unpaid_order_ttl_secs", UNPAID_ORDER_TTL_SECS),
    ("stripe_secret_key", STRIPE_SECRET_KEY),
    ("stripe_webhook_secret", STRIPE_WEBHOOK_SECRET),
    ("sweep_secret", SWEEP_SECRET),
    ("metrics_secret", METRICS_SECRET),
    ("resend_api_key", RESEND_API_KEY),
    ("store_name", "Suite Shop"),
    ("resend_timeout_ms", "1500"),
    ("password_reset_ttl_secs", PASSWORD_RESET_TTL_SECS),
    // Every test asks from 127.0.0.1, in every run against a long-lived
    // app, so the per-client limits are raised: failed sign-ins to
    // LOGIN_FAILURES_PER_CLIENT (`users.rs` reaches it from an address of
    // its own), reset requests out of reach (`accounts.rs` tests that limit
    // on an app of its own).
    ("password_reset_requests_per_client", "100000"),
    ("registrations_per_client", "1000000"),
    ("password_checks_per_client", "1000000"),
    ("login_max_failures_per_client", LOGIN_FAILURES_PER_CLIENT),
    ("unsubscribe_secret", UNSUBSCRIBE_SECRET),
];

/// Failed sign-ins per client address per window in the suite's app.
pub const LOGIN_FAILURES_PER_CLIENT: &str = "100";

/// Signs the suite app's one-click unsubscribe links.
pub const UNSUBSCRIBE_SECRET: &str = "suite-unsubscribe-secret";

/// Password-reset links work this long in the suite (seconds), so expiry can be tested.
pub const PASSWORD_RESET_TTL_SECS: &str = "8";

/// Guest-cart inactivity limit in the suite: short, so expiry can be tested.
pub const GUEST_CART_TTL: &str = "8s";

/// Unpaid orders hold stock this long in the suite (seconds), so expiry can be tested.
pub const UNPAID_ORDER_TTL_SECS: &str = "8";
/// Stripe credentials the suite runs the app with (against the fake).
pub const STRIPE_SECRET_KEY: &str = "sk_test_shop_suite";
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_shop_suite";
pub const SWEEP_SECRET: &str = "sweep-suite-secret";
/// The bearer token `GET /metrics` wants in the suite.
pub const METRICS_SECRET: &str = "metrics-suite-secret";
/// Where the fake Stripe listens when the suite runs against a real `spin up`.
pub const EXTERNAL_FAKE_STRIPE_ADDR: &str = "127.0.0.1:12111";
/// Where the fake Resend listens when the suite runs against a real `spin up`.
pub const EXTERNAL_FAKE_RESEND_ADDR: &str = "127.0.0.1:12112";
/// Where the fake object storage listens when the suite runs against a real
/// `spin up` (start it with the variables of [`object_storage_variables`]).
pub const EXTERNAL_FAKE_OBJECT_STORAGE_ADDR: &str = "127.0.0.1:12113";
/// Where the fake Twilio listens when the suite runs against a real `spin up`.
pub const EXTERNAL_FAKE_TWILIO_ADDR: &str = "127.0.0.1:12114";
pub const RESEND_API_KEY: &str = "re_shop_suite";

/// The account the app is configured to treat as an admin.
pub const ADMIN_EMAIL: &str = "admin@shop.example.test";

/// The browser origin the app is configured to allow in tests.
pub const ALLOWED_ORIGIN: &str = "https://shop.example.test";

/// A running shop and a client for it.
pub struct TestApp {
    base_url: String,
    agent: ureq::Agent,
    /// The app's token-signing key, so tests can forge tokens the way an
    /// attacker with a stolen key could not (expired, wrong audience...).
    pub signing_key: Ed25519KeyPair,
    /// The fake Stripe the app talks to.
    pub stripe: FakeStripe,
    /// The fake Resend the app sends email through.
    pub resend: FakeResend,
    /// The fake object storage product images are uploaded to.
    pub object_storage: FakeObjectStorage,
    /// The fake Twilio the app sends SMS through.
    pub twilio: FakeTwilio,
    /// The notifications component's log, for an app without Resend whose
    /// emails go to the local mail log (`spin up` keeps it in
    /// `.spin/logs/notifications_stdout.txt`).
    pub mail_log: Option<PathBuf>,
}

/// The workspace root (where `spin.toml` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Keys for a test-host run: a fresh pair per test binary.
fn fresh_keys() -> Ed25519KeyPair {
    Ed25519KeyPair::generate()
}

/// Against a real `spin up`, the signing key is the one in `.env` (made by
/// `scripts/dev-keys.sh`), or `SPIN_VARIABLE_JWT_PRIVATE_KEY` in the environment.
fn external_key() -> Ed25519KeyPair {
    let from_env = std::env::var("SPIN_VARIABLE_JWT_PRIVATE_KEY").ok();
    let from_file = || {
        std::fs::read_to_string(workspace_root().join(".env")).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("SPIN_VARIABLE_JWT_PRIVATE_KEY=").map(|v| v.trim().to_string()))
        })
    };
    let b64 = from_env.or_else(from_file).expect(
        "SHOP_BASE_URL is set, so the suite needs the app's private key: \
         set SPIN_VARIABLE_JWT_PRIVATE_KEY or keep the .env made by scripts/dev-keys.sh",
    );
    let der = STANDARD.decode(b64.trim()).expect("private key is base64 DER");
    Ed25519KeyPair::from_der(&der).expect("private key is Ed25519")
}

fn start_host(keys: &Ed25519KeyPair, stripe: &FakeStripe, resend: &FakeResend, storage: &FakeObjectStorage, twilio: &FakeTwilio) -> RunningHost {
    let vars = fake_variables(&stripe.url, &resend.url, &storage.url, &twilio.url);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    launch_host(keys, &vars)
}

/// The variables that wire the app to the suite's fakes at these base URLs
/// (on top of [`TEST_VARIABLES`]).
pub fn fake_variables(stripe: &str, resend: &str, storage: &str, twilio: &str) -> Vec<(&'static str, String)> {
    let mut vars = vec![("stripe_api_base", stripe.to_string()), ("resend_api_base", resend.to_string())];
    vars.extend(object_storage_variables_at(storage));
    vars.extend(twilio_variables_at(twilio));
    vars
}

/// Every variable an app the suite runs against (`SHOP_BASE_URL`) must be
/// started with, besides its keys: [`TEST_VARIABLES`] and the fakes at
/// their fixed external addresses. `suite-variables` prints them.
pub fn external_app_variables() -> Vec<(&'static str, String)> {
    let url = |addr: &str| format!("http://{addr}");
    let mut vars: Vec<(&'static str, String)> = TEST_VARIABLES.iter().map(|(k, v)| (*k, v.to_string())).collect();
    vars.extend(fake_variables(
        &url(EXTERNAL_FAKE_STRIPE_ADDR),
        &url(EXTERNAL_FAKE_RESEND_ADDR),
        &url(EXTERNAL_FAKE_OBJECT_STORAGE_ADDR),
        &url(EXTERNAL_FAKE_TWILIO_ADDR),
    ));
    vars
}

/// The `object_storage_*` variables that point the app at `storage`.
pub fn object_storage_variables(storage: &FakeObjectStorage) -> Vec<(&'static str, String)> {
    object_storage_variables_at(&storage.url)
}

fn object_storage_variables_at(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("object_storage_endpoint", url.to_string()),
        ("object_storage_bucket", fake_object_storage::BUCKET.into()),
        ("object_storage_region", fake_object_storage::REGION.into()),
        ("object_storage_access_key_id", fake_object_storage::ACCESS_KEY_ID.into()),
        ("object_storage_secret_access_key", fake_object_storage::SECRET_ACCESS_KEY.into()),
        ("object_storage_public_url", format!("{url}/{}", fake_object_storage::BUCKET)),
        ("image_upload_max_bytes", IMAGE_UPLOAD_MAX_BYTES.to_string()),
    ]
}

/// The variables that send the app's SMS to `twilio`.
pub fn twilio_variables(twilio: &FakeTwilio) -> Vec<(&'static str, String)> {
    twilio_variables_at(&twilio.url)
}

fn twilio_variables_at(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("twilio_api_base", url.to_string()),
        ("twilio_account_sid", fake_twilio::ACCOUNT_SID.into()),
        ("twilio_auth_token", fake_twilio::AUTH_TOKEN.into()),
        ("sms_from", fake_twilio::SMS_FROM.into()),
    ]
}

/// The largest image upload the suite's app accepts (bytes).
pub const IMAGE_UPLOAD_MAX_BYTES: u64 = 200_000;

/// Which stores [`TestApp::get`] runs the app on, from `SHOP_TEST_STORES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stores {
    /// Unset or empty: SQLite files and the embedded key-value store (as `spin up` with
    /// `runtime-config.toml`).
    Embedded,
    /// `postgres`: every service database on a throwaway Postgres server (one
    /// database per service, through the `*_database_url` variables), and
    /// `carts` and `catalog_cache` on a throwaway Redis server.
    Servers,
}

impl Stores {
    pub fn from_env() -> Stores {
        match std::env::var("SHOP_TEST_STORES").unwrap_or_default().trim() {
            "" | "sqlite" | "embedded" => Stores::Embedded,
            "postgres" => Stores::Servers,
            other => panic!("SHOP_TEST_STORES={other:?}: use `postgres`, or leave it unset for the embedded stores"),
        }
    }
}

/// The servers behind [`Stores::Servers`] and what the app needs to use them.
pub struct ServerStores {
    pub postgres: shop_test_host::testing::PostgresServer,
    pub redis: shop_test_host::redis_server::RedisServer,
    /// `*_database_url`, `postgres_host`, and `catalog_cache_get_many=false`
    /// (the catalog cache is on Redis).
    pub variables: Vec<(&'static str, String)>,
    /// A copy of `runtime-config.scale.toml` pointing at `redis`.
    pub runtime_config: PathBuf,
}

/// The Spin variable of each service database, and the database made for it.
pub const DATABASE_URL_VARIABLES: &[(&str, &str)] = &[
    ("catalog_database_url", "catalog"),
    ("users_database_url", "users"),
    ("orders_database_url", "orders"),
    ("notifications_database_url", "notifications"),
];

impl ServerStores {
    /// Start a Postgres server with one empty database per service and a
    /// Redis server, and write the runtime config for them.
    pub fn start() -> ServerStores {
        let postgres = shop_test_host::testing::PostgresServer::start()
            .unwrap_or_else(|e| panic!("SHOP_TEST_STORES=postgres needs a Postgres server: {e:#}"));
        let mut variables: Vec<(&'static str, String)> = DATABASE_URL_VARIABLES
            .iter()
            .map(|(var, db)| (*var, postgres.create_database(db).unwrap_or_else(|e| panic!("{e:#}\n{}", postgres.log()))))
            .collect();
        variables.push(("postgres_host", postgres.host_port()));
        // The catalog cache is on Redis below: as an operator sets it up.
        variables.push(("catalog_cache_get_many", "false".to_string()));
        let redis = shop_test_host::redis_server::RedisServer::start();
        let runtime_config = std::env::temp_dir().join(format!("shop-api-servers-{}-{}.toml", std::process::id(), redis.port()));
        std::fs::write(&runtime_config, scale_runtime_config(&redis.url())).expect("write runtime config");
        ServerStores { postgres, redis, variables, runtime_config }
    }
}

impl ServerStores {
    /// Ask the app for `/health` (which opens, and so migrates, every
    /// service database) and check that each Postgres database now holds its
    /// schema: proof that the app really runs on Postgres, not on a silent
    /// SQLite fallback.
    pub fn assert_in_use(&self, base_url: &str) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut health = agent.get(&format!("{base_url}/health")).call().expect("GET /health");
        let body = health.body_mut().read_to_string().unwrap_or_default();
        // Ready, or not ready for another reason than a database (a test
        // of conflicting settings): every database check must pass.
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let checks = if health.status().as_u16() == 200 { &v } else { &v["error"]["details"]["checks"] };
        for (_, name) in DATABASE_URL_VARIABLES {
            assert_eq!(checks[*name]["status"], "ok", "/health on Postgres, {name}: {body}");
        }
        for (var, name) in DATABASE_URL_VARIABLES {
            let db = shop_test_host::testing::BlockingClient::connect(&self.postgres.database_url(name))
                .unwrap_or_else(|e| panic!("{var}: {e:#}"));
            let applied = db.query_i64("SELECT COUNT(*) FROM schema_migrations").unwrap_or_else(|e| panic!("{var}: {e:#}"));
            assert!(applied >= 1, "{var}: no migration applied to the Postgres database `{name}`");
        }
    }
}

/// `runtime-config.scale.toml` with `carts` on the Redis at `redis_url` and
/// the catalog cache there too (in its own Redis database, since the cart
/// lists the keys of its database).
pub fn scale_runtime_config(redis_url: &str) -> String {
    let text = std::fs::read_to_string(workspace_root().join("runtime-config.scale.toml")).expect("runtime-config.scale.toml");
    let carts = "url = \"redis://127.0.0.1:6379\"";
    assert!(text.contains(carts), "runtime-config.scale.toml no longer holds {carts}");
    let cache = "[key_value_store.catalog_cache]\ntype = \"spin\"\npath = \".spin/catalog_cache.db\"";
    assert!(text.contains(cache), "runtime-config.scale.toml no longer holds {cache:?}");
    let base = redis_url.trim_end_matches('/');
    text.replace(carts, &format!("url = \"{base}\""))
        .replace(cache, &format!("[key_value_store.catalog_cache]\ntype = \"redis\"\nurl = \"{base}/1\""))
}

/// `runtime-config.toml` (the embedded stores) with the key-value stores
/// `labels` moved to the Redis at `redis_url`, written to a file of its own
/// for [`launch_host_with`], which reads it at start (remove it after).
/// The labels share one Redis database, so give it at most one that lists
/// its keys (`carts`).
pub fn embedded_runtime_config_with_redis(labels: &[&str], redis_url: &str) -> PathBuf {
    let text = std::fs::read_to_string(workspace_root().join("runtime-config.toml")).expect("runtime-config.toml");
    let mut config: toml::Table = text.parse().expect("runtime-config.toml is TOML");
    let stores = config
        .entry("key_value_store")
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .expect("[key_value_store] is a table");
    for label in labels {
        stores.insert(label.to_string(), toml::Value::Table(toml::toml! { type = "redis" url = (redis_url) }));
    }
    static WRITTEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = WRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("shop-api-on-redis-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, toml::to_string(&config).expect("TOML")).expect("write runtime config");
    path
}

impl ServerStores {
    /// [`Self::variables`] but those `taken` (a test's or a benchmark's own
    /// setting, which wins over the servers' defaults).
    pub fn variables_unless(&self, taken: impl Fn(&str) -> bool) -> Vec<(&'static str, &str)> {
        self.variables.iter().filter(|(k, _)| !taken(k)).map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// Keep the servers running for the rest of the test binary and stop them
/// when it exits (statics are never dropped, and a leaked server would
/// outlive the run).
fn keep_until_exit(servers: ServerStores) {
    static KEPT: std::sync::Mutex<Vec<ServerStores>> = std::sync::Mutex::new(Vec::new());
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    extern "C" fn stop() {
        if let Ok(mut kept) = KEPT.lock() {
            for servers in kept.drain(..) {
                let _ = std::fs::remove_file(&servers.runtime_config);
                drop(servers);
            }
        }
    }
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).push(servers);
    // SAFETY: registers a plain function with no arguments, once; it runs at exit.
    REGISTERED.call_once(|| unsafe {
        libc::atexit(stop);
    });
}

/// Start a test host for the real app with the suite's variables plus
/// `extra` (benchmarks use this to lift rate limits).
///
/// The stores follow `SHOP_TEST_STORES` ([`Stores`]): with `postgres`, each
/// launch gets its own throwaway Postgres (one database per service) and
/// Redis, kept until the test binary exits.
pub fn launch_host(keys: &Ed25519KeyPair, extra: &[(&str, &str)]) -> RunningHost {
    let (host, servers) = launch_host_and_stores(keys, extra);
    if let Some(servers) = servers {
        keep_until_exit(servers);
    }
    host
}

/// [`launch_host`], handing over the servers it started for
/// [`Stores::Servers`] (`None` on the embedded stores), for a test that
/// reaches the app's databases from outside. Dropping them stops them: keep
/// them as long as the host.
/// Run one statement on a service database of a host of the suite's own
/// from outside the app (the embedded file, or the Postgres database the
/// host was given); for a `SELECT`, the first column of every row, as text
/// (`NULL` for a null). Not for a shop at `SHOP_BASE_URL`.
pub fn on_database(stores: &Option<ServerStores>, host: &RunningHost, label: &str, sql: &str) -> Vec<String> {
    match stores {
        None => {
            use rusqlite::types::Value as V;
            let conn = rusqlite::Connection::open(host.sqlite_database_path(label)).expect("open the SQLite file");
            conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, V>(0)).unwrap();
            rows.map(|v| match v.unwrap() {
                V::Null => "NULL".to_string(),
                V::Integer(n) => n.to_string(),
                V::Real(x) => x.to_string(),
                V::Text(t) => t,
                V::Blob(b) => format!("{b:?}"),
            })
            .collect()
        }
        Some(servers) => {
            use storage::Db;
            let url = servers.variables.iter().find(|(k, _)| *k == format!("{label}_database_url")).map(|(_, v)| v.clone()).unwrap();
            let pg = shop_store_copy::PgDb::connect(&url).expect("connect");
            if !sql.trim_start().to_uppercase().starts_with("SELECT") {
                pg.execute(sql, &[]).unwrap();
                return Vec::new();
            }
            let rows = pg.query(&format!("SELECT v::text AS v FROM ({sql}) AS x(v)"), &[]).unwrap();
            rows.iter().map(|r| r.opt_text("v").unwrap().unwrap_or_else(|| "NULL".to_string())).collect()
        }
    }
}

/// A host of the test's own (on the stores `SHOP_TEST_STORES` selects),
/// with its own fake Stripe and Resend, and `extra` variables.
pub fn own_app_and_stores(extra: &[(&str, &str)]) -> (RunningHost, Option<ServerStores>, TestApp) {
    let keys = Ed25519KeyPair::generate();
    let stripe = FakeStripe::start("127.0.0.1:0");
    let resend = FakeResend::start("127.0.0.1:0");
    let mut variables = vec![("stripe_api_base", stripe.url.as_str()), ("resend_api_base", resend.url.as_str())];
    variables.extend_from_slice(extra);
    let (host, servers) = launch_host_and_stores(&keys, &variables);
    let mut app = TestApp::for_host(&host, keys);
    app.stripe = stripe;
    app.resend = resend;
    (host, servers, app)
}

pub fn launch_host_and_stores(keys: &Ed25519KeyPair, extra: &[(&str, &str)]) -> (RunningHost, Option<ServerStores>) {
    match Stores::from_env() {
        Stores::Embedded => (launch_host_with(keys, extra, &workspace_root().join("runtime-config.toml")), None),
        Stores::Servers => {
            let servers = ServerStores::start();
            let mut all: Vec<(&str, &str)> = extra.to_vec();
            all.extend(servers.variables_unless(|k| extra.iter().any(|(e, _)| *e == k)));
            let host = launch_host_with(keys, &all, &servers.runtime_config);
            servers.assert_in_use(&host.base_url());
            (host, Some(servers))
        }
    }
}

/// [`launch_host`] with another runtime config (e.g. `carts` on a test
/// Redis server).
pub fn launch_host_with(keys: &Ed25519KeyPair, extra: &[(&str, &str)], runtime_config: &std::path::Path) -> RunningHost {
    let root = workspace_root();
    static LAUNCHES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let state_dir = std::env::temp_dir().join(format!("shop-api-tests-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let mut variables: HashMap<String, String> =
        TEST_VARIABLES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    variables.insert("jwt_private_key".into(), STANDARD.encode(keys.to_der()));
    variables.insert("jwt_public_key".into(), STANDARD.encode(keys.public_key().to_der()));
    if !extra.iter().any(|(k, _)| *k == "resend_api_base") {
        // No fake Resend to send to: emails go to the local mail log (the
        // notifications component's log), where `TestApp::for_host` reads them.
        variables.insert("resend_api_key".into(), String::new());
    }
    for (k, v) in extra {
        variables.insert(k.to_string(), v.to_string());
    }
    RunningHost::start(HostOptions {
        manifest: root.join("spin.toml"),
        runtime_config: Some(runtime_config.to_path_buf()),
        state_dir,
        variables,
        listen: "127.0.0.1:0".parse().expect("addr"),
    })
    .unwrap_or_else(|e| {
        panic!(
            "could not start the test host: {e:#}\n\
             Build the components first: scripts/build-components.sh (the README's test command does this)."
        )
    })
}

/// A host of the test's own, started with these settings, and the app on
/// it; `None`, with a line saying why, against `SHOP_BASE_URL` (an app the
/// suite cannot reconfigure). Keep the host as long as the app is used.
pub fn own_app(extra: &[(&str, &str)], needs: &str) -> Option<(RunningHost, TestApp)> {
    if std::env::var("SHOP_BASE_URL").is_ok_and(|u| !u.trim().is_empty()) {
        eprintln!("not applicable against SHOP_BASE_URL: {needs}");
        return None;
    }
    let keys = Ed25519KeyPair::generate();
    let host = launch_host(&keys, extra);
    let app = TestApp::for_host(&host, keys);
    Some((host, app))
}

impl TestApp {
    /// The app under test, started once per test binary.
    pub fn get() -> &'static TestApp {
        static APP: OnceLock<TestApp> = OnceLock::new();
        static HOST: OnceLock<RunningHost> = OnceLock::new();
        APP.get_or_init(|| {
            let (base_url, signing_key, stripe, resend, storage, twilio) = match std::env::var("SHOP_BASE_URL") {
                Ok(url) if !url.trim().is_empty() => {
                    let addr = std::env::var("SHOP_FAKE_STRIPE_ADDR").unwrap_or_else(|_| EXTERNAL_FAKE_STRIPE_ADDR.to_string());
                    let resend_addr = std::env::var("SHOP_FAKE_RESEND_ADDR").unwrap_or_else(|_| EXTERNAL_FAKE_RESEND_ADDR.to_string());
                    let storage_addr = std::env::var("SHOP_FAKE_OBJECT_STORAGE_ADDR").unwrap_or_else(|_| EXTERNAL_FAKE_OBJECT_STORAGE_ADDR.to_string());
                    let twilio_addr = std::env::var("SHOP_FAKE_TWILIO_ADDR").unwrap_or_else(|_| EXTERNAL_FAKE_TWILIO_ADDR.to_string());
                    (
                        url.trim().trim_end_matches('/').to_string(),
                        external_key(),
                        FakeStripe::start(&addr),
                        FakeResend::start(&resend_addr),
                        FakeObjectStorage::start(&storage_addr),
                        FakeTwilio::start(&twilio_addr),
                    )
                }
                _ => {
                    let keys = fresh_keys();
                    let stripe = FakeStripe::start("127.0.0.1:0");
                    let resend = FakeResend::start("127.0.0.1:0");
                    let storage = FakeObjectStorage::start("127.0.0.1:0");
                    let twilio = FakeTwilio::start("127.0.0.1:0");
                    let url = HOST.get_or_init(|| start_host(&keys, &stripe, &resend, &storage, &twilio)).base_url();
                    (url, keys, stripe, resend, storage, twilio)
                }
            };
            let mut app = TestApp::connect(base_url, signing_key);
            app.stripe = stripe;
            app.resend = resend;
            app.object_storage = storage;
            app.twilio = twilio;
            app
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A client for a host a test started itself: emails that reach no
    /// fake Resend are read from its local mail log.
    pub fn for_host(host: &RunningHost, signing_key: Ed25519KeyPair) -> TestApp {
        let mut app = TestApp::connect(host.base_url(), signing_key);
        app.mail_log = Some(host.component_log_path("notifications"));
        app
    }

    /// A client for an app started elsewhere (benchmarks).
    pub fn connect(base_url: String, signing_key: Ed25519KeyPair) -> TestApp {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        TestApp {
            base_url,
            agent,
            signing_key,
            stripe: FakeStripe::start("127.0.0.1:0"),
            resend: FakeResend::start("127.0.0.1:0"),
            object_storage: FakeObjectStorage::start("127.0.0.1:0"),
            twilio: FakeTwilio::start("127.0.0.1:0"),
            mail_log: None,
        }
    }

    /// `GET path`.
    pub fn get_path(&self, path: &str) -> ApiResponse {
        self.request("GET", path, &[], None)
    }

    /// Any request. `body` is sent as JSON when given.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> ApiResponse {
        match body {
            Some(json) => {
                let mut with_type = headers.to_vec();
                with_type.push(("content-type", "application/json"));
                self.request_raw(method, path, &with_type, json.to_string().into_bytes())
            }
            None => self.request_raw(method, path, headers, Vec::new()),
        }
    }

    /// Send raw bytes (malformed bodies, odd content types).
    pub fn request_raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> ApiResponse {
        let url = format!("{}{}", self.base_url, path);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            // From bytes, so a test can send what a client may: bytes over
            // 0x7f (obs-text) as well as visible ASCII.
            let value = ureq::http::HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|e| panic!("header {k}: {e}"));
            builder = builder.header(*k, value);
        }
        let request = builder.body(body).unwrap_or_else(|e| panic!("bad request {method} {url}: {e}"));
        let mut resp = self.agent.run(request).unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        ApiResponse { status, headers, body }
    }

    // ---- catalog steps, in the product's words ----

    /// `GET /api/products?<query>`.
    pub fn list_products(&self, query: &str) -> ApiResponse {
        self.get_path(&format!("/api/products?{query}"))
    }

    /// Every active product, following pages.
    pub fn all_products(&self, query: &str) -> Vec<Value> {
        self.all_pages(None, "/api/products", query, "products")
    }

    /// Every item of a paged list (`page`, `limit=100`) under `field`,
    /// following pages until one is empty; with `token`, as that caller.
    pub fn all_pages(&self, token: Option<&str>, path: &str, query: &str, field: &str) -> Vec<Value> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let mut out = Vec::new();
        for page in 1.. {
            let sep = if query.is_empty() { "" } else { "&" };
            let r = self.request("GET", &format!("{path}?{query}{sep}limit=100&page={page}"), &headers, None);
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            let batch = r.json()[field].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            out.extend(batch);
        }
        out
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl ApiResponse {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// A header value (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Assert this is the standard error envelope with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "body: {}", self.body);
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "message: {}", self.body);
        assert_eq!(
            v["error"]["request_id"].as_str(),
            self.header("x-request-id"),
            "the envelope's request id is the header's"
        );
        v
    }
}

/// Run `a` and `b` on two threads that start together (a barrier), for
/// the races the suite checks; their results, in order.
pub fn at_once<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            barrier.wait();
            a()
        });
        let b = s.spawn(|| {
            barrier.wait();
            b()
        });
        (a.join().expect("the first racer panicked"), b.join().expect("the second racer panicked"))
    })
}

mod users;
pub use users::{link_token, post_from, post_from_with, unique_email, TestUser, STRONG_PASSWORD};

mod catalog_steps;
pub use catalog_steps::unique_sku;

mod cart_steps;
pub use cart_steps::Shopper;

pub mod fake_stripe;
pub use fake_stripe::{Capture, FakeStripe};
mod order_steps;
pub use order_steps::{event, now, stripe_signature};
pub mod fake_resend;
pub use fake_resend::FakeResend;
pub mod fake_object_storage;
pub use fake_object_storage::FakeObjectStorage;
pub mod fake_twilio;
pub use fake_twilio::FakeTwilio;
mod rng;
pub use rng::Rng;
