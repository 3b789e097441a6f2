//! A throwaway `redis-server` for tests: this crate's (key-value on Redis)
//! and other test crates' (the API suite runs the cart on Redis).
//!
//! [`RedisServer::start`] runs the Debian `redis-server` binary on a free
//! loopback port with no persistence, in a temporary directory, and kills
//! it and removes the directory on drop. Without `redis-server` on the
//! PATH it panics with the install instruction: tests that need Redis fail,
//! they never skip (`scripts/test.sh` installs it). [`RedisServer::stop`]
//! and [`RedisServer::restart`] make an outage, with the data kept across
//! it as a persistent Redis keeps it.
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
            let child = match spawn(port, &dir) {
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
            if server.answers_within(Duration::from_secs(10)) {
                return server;
            }
            // Exited (most likely the port was taken meanwhile) or silent.
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("`redis-server` did not come up on a free port; its last log:\n{last_log}");
    }

    /// Whether the server answers `PING` before `within` passes (false at
    /// once if it exited).
    fn answers_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if let Ok(mut con) = self.try_connect() {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// An outage: the server writes its data to disk (`SAVE`, as a
    /// persistent Redis keeps it) and is killed; its port refuses
    /// connections until [`Self::restart`].
    pub fn stop(&mut self) {
        let _: redis::RedisResult<()> = redis::cmd("SAVE").query(&mut self.connect());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The end of the outage: the server again, on the same port, with the
    /// data it saved when it stopped.
    pub fn restart(&mut self) {
        self.child = spawn(self.port, &self.dir).expect("restarting redis-server");
        if !self.answers_within(Duration::from_secs(10)) {
            let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
            panic!("`redis-server` did not come back on port {}; its log:\n{log}", self.port);
        }
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

    /// `FLUSHALL`: every key gone, as after a restart without persistence.
    pub fn flush_all(&self) {
        redis::cmd("FLUSHALL")
            .query::<()>(&mut self.connect())
            .expect("FLUSHALL on the test redis-server")
    }

    /// `KEYS pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.connect())
            .expect("KEYS on the test redis-server")
    }
}

/// `redis-server` on loopback `port`, its files (a dump written by `SAVE`,
/// read back at start) and log in `dir`; no automatic persistence.
fn spawn(port: u16, dir: &std::path::Path) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
