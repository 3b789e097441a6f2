//! The `shop-test-host` binary: argument parsing, serving, and guest
//! stdout/stderr forwarded to the host's stderr with a component prefix.

mod common;

use common::{fixtures_dir, TempDir};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn binary_serves_and_prefixes_guest_output() {
    common::require_fixtures();
    let state = TempDir::new("bin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shop-test-host"))
        .arg("--manifest")
        .arg(fixtures_dir().join("spin.toml"))
        .arg("--runtime-config-file")
        .arg(fixtures_dir().join("runtime-config.toml"))
        .arg("--state-dir")
        .arg(state.path())
        .args(["--listen", "127.0.0.1:0", "--variable", "plain=from-cli"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");

    // Forward stderr lines to the test through a channel.
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        rx.recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no stderr line while waiting for {what}"))
    };

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let banner = next_line("the serving banner");
        let url = banner
            .strip_prefix("shop-test-host: serving on http://")
            .unwrap_or_else(|| panic!("unexpected first line {banner:?}"));
        let addr: std::net::SocketAddr = url.parse().unwrap();

        let reply = common::request(
            addr,
            "GET",
            "/probe/v",
            &[("x-action", "var"), ("x-name", "plain")],
            b"",
        );
        assert_eq!(reply.ok()["value"], "from-cli");

        let reply = common::request(addr, "POST", "/probe/log", &[("x-action", "log")], b"hello");
        reply.ok();
        let mut lines = vec![next_line("guest stdout"), next_line("guest stderr")];
        lines.sort();
        assert_eq!(
            lines,
            [
                "[probe] to stderr without newline",
                "[probe] to stdout: hello"
            ]
        );
    }));
    child.kill().ok();
    child.wait().ok();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn binary_rejects_unknown_arguments() {
    let output = Command::new(env!("CARGO_BIN_EXE_shop-test-host"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown argument"));
}
