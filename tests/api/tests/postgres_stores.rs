//! Every service database on Postgres, chosen by configuration alone: here,
//! several app instances start together on the same empty Postgres databases
//! and each migration (and the demo catalog) is applied exactly once.
//!
//! Starts its own Postgres and test hosts, so it runs in every suite run
//! (not against `SHOP_BASE_URL`, whose stores it cannot choose). The whole
//! suite runs on Postgres with `SHOP_TEST_STORES=postgres`.

use api_tests::{launch_host_with, scale_runtime_config, DATABASE_URL_VARIABLES};
use jwt_simple::prelude::Ed25519KeyPair;
use shop_test_host::redis_server::RedisServer;
use shop_test_host::testing::{BlockingClient, PostgresServer};

#[test]
fn instances_starting_together_on_empty_postgres_migrate_once() {
    if std::env::var("SHOP_BASE_URL").is_ok_and(|u| !u.is_empty()) {
        eprintln!("not applicable against SHOP_BASE_URL: it cannot choose the app's stores");
        return;
    }
    let pg = PostgresServer::start().expect("Postgres server (apt-get install postgresql)");
    let mut vars: Vec<(&str, String)> =
        DATABASE_URL_VARIABLES.iter().map(|(var, db)| (*var, pg.create_database(db).unwrap())).collect();
    vars.push(("postgres_host", pg.host_port()));
    let redis = RedisServer::start();
    let config = std::env::temp_dir().join(format!("shop-pg-migrate-{}.toml", std::process::id()));
    std::fs::write(&config, scale_runtime_config(&redis.url())).unwrap();
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let keys = Ed25519KeyPair::generate();
    let hosts: Vec<_> = (0..3).map(|_| launch_host_with(&keys, &extra, &config)).collect();
    let _ = std::fs::remove_file(&config);
    // Every instance's health check at once, several times each: each opens
    // (and so migrates) all four databases, and the catalog loads the demo data.
    let urls: Vec<String> = hosts.iter().map(|h| h.base_url()).collect();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let calls: Vec<_> = urls
            .iter()
            .flat_map(|u| (0..4).map(move |_| u.clone()))
            .map(|u| {
                s.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                    agent.get(&format!("{u}/health")).call().map(|r| r.status().as_u16()).unwrap_or(0)
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "health on fresh Postgres: {statuses:?}\n{}", pg.log());
    for (var, name) in DATABASE_URL_VARIABLES {
        let db = BlockingClient::connect(&pg.database_url(name)).unwrap();
        let rows = db.query_i64("SELECT COUNT(*) FROM schema_migrations").unwrap();
        let distinct = db.query_i64("SELECT COUNT(DISTINCT version) FROM schema_migrations").unwrap();
        assert_eq!((rows, distinct), (1, 1), "{var}: each migration recorded once");
    }
    let catalog = BlockingClient::connect(&pg.database_url("catalog")).unwrap();
    assert_eq!(catalog.query_i64("SELECT COUNT(*) FROM data_loads WHERE name = 'demo_catalog'").unwrap(), 1);
    assert_eq!(catalog.query_i64("SELECT COUNT(*) FROM products").unwrap(), 60, "demo catalog loaded once");
    // The app reads what it wrote, through the Postgres search path too.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(&format!("{}/api/products?q=wire&limit=1", urls[0])).call().unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{body}");
    assert!(body.contains("\"total\""), "{body}");
    drop(hosts);
}
