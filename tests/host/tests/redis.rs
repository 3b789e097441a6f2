//! Outbound Redis (`fermyon:spin/redis@2.0.0`) against a real `redis-server`
//! started per test on a free loopback port. Without `redis-server` on the
//! PATH these tests fail (they never skip): install it with
//! `apt-get install redis-server`.

mod common;

use common::start;
use shop_test_host::redis_server::RedisServer;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `total_connections_received` from `INFO stats` (this call's own
/// connection included).
fn connections_received(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(&mut server.connect()).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .expect("INFO stats has total_connections_received")
        .trim()
        .parse()
        .unwrap()
}

fn redis_probe(
    app: &common::TestHost,
    component: &str,
    address: &str,
    op: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> common::Reply {
    let mut headers = vec![("x-action", "redis"), ("x-address", address), ("x-op", op)];
    headers.extend_from_slice(extra);
    app.post(&format!("/{component}/redis"), &headers, body)
}

#[test]
fn typed_commands_and_execute_work_against_a_real_server() {
    let server = RedisServer::start();
    // `probe` allows "{{ redis_server }}"; the override points it here.
    let app = start(&[("redis_server", &server.url())]);
    let reply = redis_probe(
        &app,
        "probe",
        &server.url(),
        "roundtrip",
        &[("x-key", "rt")],
        b"",
    );
    let v = &reply.ok()["value"];

    assert_eq!(v["get"], "hello");
    assert_eq!(v["get_missing"], serde_json::Value::Null);
    assert_eq!(v["incr"], serde_json::json!([1, 2]));
    let e = v["incr_not_a_number"]["error"].as_str().unwrap();
    assert!(e.contains("Other") && e.contains("not an integer"), "{e}");
    assert_eq!(v["sadd"], 3);
    assert_eq!(v["srem"], 1);
    assert_eq!(v["smembers"], serde_json::json!(["a", "c"]));
    let e = v["sadd_wrong_type"]["error"].as_str().unwrap();
    assert!(e.contains("Other") && e.contains("WRONGTYPE"), "{e}");
    assert_eq!(v["exec_set"], serde_json::json!([{ "status": "OK" }]));
    assert_eq!(v["exec_incrby"], serde_json::json!([{ "int64": 42 }]));
    assert_eq!(
        v["exec_mget"],
        serde_json::json!([{ "binary": "42" }, { "nil": null }])
    );
    assert_eq!(v["exec_ping"], serde_json::json!([{ "status": "PONG" }]));
    let e = v["exec_unknown"]["error"].as_str().unwrap();
    assert!(e.contains("Other") && e.contains("unknown command"), "{e}");
    assert_eq!(v["del"], 2);
    assert_eq!(v["get_after_del"], serde_json::Value::Null);

    // What the component wrote is really in the server...
    let mut con = server.connect();
    let mut members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("rt:set")
        .query(&mut con)
        .unwrap();
    members.sort();
    assert_eq!(members, ["a", "c"]);
    let exec: String = redis::cmd("GET").arg("rt:exec").query(&mut con).unwrap();
    assert_eq!(exec, "42");
    let str_exists: i64 = redis::cmd("EXISTS").arg("rt:str").query(&mut con).unwrap();
    assert_eq!(str_exists, 0);

    // ...and what the test writes (binary-safe) is read back through
    // `execute`, with int64 and binary parameters.
    let () = redis::cmd("SET")
        .arg("from-test")
        .arg(&b"caf\xc3\xa9"[..])
        .query(&mut con)
        .unwrap();
    let reply = redis_probe(
        &app,
        "probe",
        &server.url(),
        "execute",
        &[],
        br#"{"command": "GET", "args": ["from-test"]}"#,
    );
    assert_eq!(
        reply.ok()["value"],
        serde_json::json!([{ "binary": "café" }])
    );
    let reply = redis_probe(
        &app,
        "probe",
        &server.url(),
        "execute",
        &[],
        br#"{"command": "RPUSH", "args": ["list", 7, "x", -3]}"#,
    );
    assert_eq!(reply.ok()["value"], serde_json::json!([{ "int64": 3 }]));
    let reply = redis_probe(
        &app,
        "probe",
        &server.url(),
        "execute",
        &[],
        br#"{"command": "LRANGE", "args": ["list", 0, -1]}"#,
    );
    assert_eq!(
        reply.ok()["value"],
        serde_json::json!([{ "binary": "7" }, { "binary": "x" }, { "binary": "-3" }])
    );
    // A blocking command outlives any short reply timeout (as in Spin).
    let reply = redis_probe(
        &app,
        "probe",
        &server.url(),
        "execute",
        &[],
        br#"{"command": "BLPOP", "args": ["empty-list", 1]}"#,
    );
    assert_eq!(reply.ok()["value"], serde_json::json!([{ "nil": null }]));
}

#[test]
fn publish_reaches_a_subscriber() {
    let server = RedisServer::start();
    let app = start(&[("redis_server", &server.url())]);
    let mut subscriber = server.connect();
    let mut pubsub = subscriber.as_pubsub();
    // `subscribe` returns once the server confirmed the subscription.
    pubsub.subscribe("orders").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let payload = b"order 42 placed \x00\xff";
    let reply = redis_probe(
        &app,
        "probe",
        &server.url(),
        "publish",
        &[("x-channel", "orders")],
        payload,
    );
    assert_eq!(reply.ok()["value"]["published"], "orders");

    let message = pubsub
        .get_message()
        .expect("the subscriber receives the component's message");
    assert_eq!(message.get_channel_name(), "orders");
    assert_eq!(message.get_payload_bytes(), payload);
}

#[test]
fn addresses_not_in_allowed_outbound_hosts_are_refused() {
    let server = RedisServer::start();
    // The default `redis_server` (port 9) does not cover this server's port.
    let app = start(&[]);
    let before = connections_received(&server);

    let error = redis_probe(&app, "probe", &server.url(), "open", &[], b"").error();
    assert!(error.contains("InvalidAddress"), "{error}");
    // No port: 6379, not the allowed port 9.
    let error = redis_probe(&app, "probe", "redis://127.0.0.1", "open", &[], b"").error();
    assert!(error.contains("InvalidAddress"), "{error}");
    // `limited` has no allowed_outbound_hosts at all.
    let error = redis_probe(&app, "limited", &server.url(), "open", &[], b"").error();
    assert!(error.contains("InvalidAddress"), "{error}");
    // Right host and port but another scheme.
    let other_scheme = format!("http://127.0.0.1:{}", server.port());
    let error = redis_probe(&app, "probe", &other_scheme, "open", &[], b"").error();
    assert!(error.contains("InvalidAddress"), "{error}");

    // None of them reached the server (only our own INFO connections did).
    assert_eq!(connections_received(&server), before + 1);
}

#[test]
fn allowed_but_unreachable_server_is_another_error() {
    // A loopback port with nothing listening, allowed for `probe`.
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let app = start(&[("redis_server", &closed)]);
    let error = redis_probe(&app, "probe", &closed, "open", &[], b"").error();
    assert!(error.contains("Other"), "{error}");
    assert!(!error.contains("InvalidAddress"), "{error}");
}
