//! Shared helpers for the test host's integration tests: starting a host on
//! the fixture app with a private state dir, a small blocking HTTP client,
//! and a loopback fake upstream server.

#![allow(dead_code)]

use http_body_util::{BodyExt, Full};
use shop_test_host::{HostOptions, RunningHost};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The fixture crates; the host tests need their release wasm.
pub const FIXTURE_WASM: [&str; 3] = ["fixture_probe", "fixture_greeter", "fixture_greeter_client"];
pub const BUILD_COMMAND: &str = "cargo build --release --target wasm32-wasip2 \
     -p fixture-probe -p fixture-greeter -p fixture-greeter-client";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

pub fn wasm_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
}

/// Fails the test loudly (never skips it) when the fixtures were not built.
pub fn require_fixtures() {
    for name in FIXTURE_WASM {
        let path = wasm_path(name);
        assert!(
            path.is_file(),
            "fixture wasm {} is missing: build the fixtures first with `{BUILD_COMMAND}`",
            path.display()
        );
    }
}

/// A fresh, empty directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shop-test-host-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Options for the fixture app with a state dir of the caller's choosing.
pub fn fixture_options(state_dir: &Path, variables: &[(&str, &str)]) -> HostOptions {
    require_fixtures();
    HostOptions {
        manifest: fixtures_dir().join("spin.toml"),
        runtime_config: Some(fixtures_dir().join("runtime-config.toml")),
        state_dir: state_dir.to_path_buf(),
        variables: variables
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        listen: "127.0.0.1:0".parse().unwrap(),
    }
}

/// A running fixture app with its own state dir.
pub struct TestHost {
    pub host: RunningHost,
    pub state: TempDir,
}

pub fn start(variables: &[(&str, &str)]) -> TestHost {
    let state = TempDir::new("state");
    let host =
        RunningHost::start(fixture_options(state.path(), variables)).expect("fixture app starts");
    TestHost { host, state }
}

impl TestHost {
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        request(self.host.addr(), "GET", path, headers, b"")
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Reply {
        request(self.host.addr(), "POST", path, headers, body.as_ref())
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts success and returns the JSON body.
    pub fn ok(&self) -> serde_json::Value {
        assert_eq!(self.status, 200, "unexpected status, body: {}", self.body);
        self.json()
    }

    /// Asserts the probe reported an error and returns its text.
    pub fn error(&self) -> String {
        assert_eq!(self.status, 500, "expected an error, body: {}", self.body);
        self.json()["error"].as_str().unwrap().to_string()
    }
}

/// One HTTP/1.1 request over a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder
            .body(Full::new(bytes::Bytes::copy_from_slice(body)))
            .unwrap();
        let response =
            tokio::time::timeout(std::time::Duration::from_secs(60), sender.send_request(req))
                .await
                .expect("response within 60 s")
                .unwrap();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    })
}

/// A request the fake upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// A loopback HTTP server answering every request with `200 upstream says hi`,
/// recording what it received.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl FakeUpstream {
    pub fn start() -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let seen = seen2.clone();
                    std::thread::spawn(move || serve_one(conn, &seen));
                }
            }
        });
        FakeUpstream { addr, seen, stop }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

fn serve_one(mut conn: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        data.extend_from_slice(&buf[..n]);
        if let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = data[head_end..].to_vec();
    if let Some((_, len)) = headers.iter().find(|(k, _)| k == "content-length") {
        let len: usize = len.parse().unwrap_or(0);
        while body.len() < len {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
            }
        }
    } else if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = read_chunked(&mut conn, body);
    }
    seen.lock().unwrap().push(Seen { method, path, body });
    let reply = "upstream says hi";
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn read_chunked(conn: &mut TcpStream, mut raw: Vec<u8>) -> Vec<u8> {
    let mut buf = [0u8; 8192];
    loop {
        if let Some(decoded) = decode_chunked(&raw) {
            return decoded;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return decode_chunked(&raw).unwrap_or_default(),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

/// Decodes a complete chunked body, or `None` if more bytes are needed.
fn decode_chunked(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let line_end = raw[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[pos..line_end]).ok()?.trim(), 16)
            .ok()?;
        pos = line_end + 2;
        if size == 0 {
            return Some(out);
        }
        if raw.len() < pos + size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[pos..pos + size]);
        pos += size + 2;
    }
}
