//! A throwaway `redis-server` for tests: this crate's (key-value on Redis)
//! and other test crates' (the API suite runs the cart on Redis).
//!
//! [`RedisServer::start`] runs the Debian `redis-server` binary on a free
//! loopback port with no persistence, in a temporary directory, and kills
//! it and removes the directory on drop. Without `redis-server` on the
//! PATH it panics with the install instruction: tests that need Redis fail,
//! they never skip (`scripts/test.sh` installs it).
//!
//! ```no_run
//! use shop_test_host::redis_server::RedisServer;
//! let redis = RedisServer::start();
//! let url = redis.url();           // redis://127.0.0.1:PORT
//! let mut con = redis.connect();   // a `redis` crate connection, for checks
//! let cart = redis.get("cart:user:u1");  // or plain GET / KEYS helpers
//! ```

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running `redis-server` (killed on drop).
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let mut last_log = String::new();
        // The port is free when picked but could be taken before the server
        // binds it; a server that exits early is retried on another port.
        for _ in 0..5 {
            let dir = std::env::temp_dir().join(format!(
                "shop-redis-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("creating the redis-server directory");
            let port = free_port();
            let log = dir.join("redis.log");
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "`redis-server` is not installed (not on PATH): these tests need a real \
                     server. Install it with `apt-get install redis-server` (Debian/Ubuntu \
                     package `redis-server`); the tests start their own instance, the system \
                     service is not needed."
                ),
                Err(e) => panic!("cannot start `redis-server`: {e}"),
            };
            let mut server = RedisServer { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if server.child.try_wait().ok().flatten().is_some() {
                    break; // exited: most likely the port was taken meanwhile
                }
                if let Ok(mut con) = server.try_connect() {
                    if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                        return server;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("`redis-server` did not come up on a free port; its last log:\n{last_log}");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn try_connect(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(5))
    }

    /// A blocking connection, for a test to look at (or change) the data.
    pub fn connect(&self) -> redis::Connection {
        self.try_connect()
            .expect("connecting to the test redis-server")
    }

    /// `GET key` (for tests that do not depend on the `redis` crate).
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connect())
            .expect("GET on the test redis-server")
    }

    /// `KEYS pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.connect())
            .expect("KEYS on the test redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
