//! The catalog's SigV4 presigner against an independent implementation:
//! botocore's `generate_presigned_url("put_object", ...)` (pinned in
//! tests/reference/botocore-requirements.txt, run in a venv by
//! scripts/botocore-presign.sh) with the same inputs and a fixed clock.
//! The URLs must be identical, byte for byte.
//!
//! Needs python3 with venv and PyPI the first time (the venv is kept under
//! target/). `SHOP_SKIP_BOTOCORE=1` skips it, saying so, on a machine
//! without them.

use catalog_core::images::sigv4::{presign_put, PresignPut};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

fn botocore_url(p: &PresignPut) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../..");
    let inputs = json!({
        "endpoint": p.endpoint, "bucket": p.bucket, "key": p.key, "region": p.region,
        "access_key_id": p.access_key_id, "secret_access_key": p.secret_access_key,
        "content_type": p.content_type, "content_length": p.content_length,
        "now": p.now, "expires_secs": p.expires_secs,
    });
    let mut child = Command::new(format!("{root}/scripts/botocore-presign.sh"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/botocore-presign.sh");
    child.stdin.take().expect("stdin").write_all(inputs.to_string().as_bytes()).expect("write inputs");
    let out = child.wait_with_output().expect("botocore-presign.sh");
    assert!(out.status.success(), "botocore-presign.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

#[test]
fn presigned_put_urls_match_botocore_byte_for_byte() {
    if std::env::var("SHOP_SKIP_BOTOCORE").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: SHOP_SKIP_BOTOCORE=1, the presigner was not compared with botocore");
        return;
    }
    let base = PresignPut {
        endpoint: "http://127.0.0.1:9000",
        bucket: "shop-images",
        key: "products/a0000000-0000-4000-8000-000000000001/3f1c2b9e-1d2c-4e5f-9a8b-7c6d5e4f3a2b.jpg",
        region: "eu-central-1",
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        content_type: "image/jpeg",
        content_length: 12345,
        now: 1_767_225_600, // 2026-01-01T00:00:00Z
        expires_secs: 900,
    };
    let cases = [
        base.clone(),
        // AWS itself: https, default port dropped from the signed host.
        PresignPut { endpoint: "https://s3.us-west-2.amazonaws.com", region: "us-west-2", content_type: "image/png", content_length: 1, now: 1_780_000_123, expires_secs: 3600, ..base.clone() },
        // R2-style region and an explicit default port.
        PresignPut { endpoint: "https://abc123.r2.cloudflarestorage.com:443", region: "auto", content_type: "image/webp", content_length: 10_485_760, ..base.clone() },
        // A key that needs encoding (not one the catalog makes, but the signer must get it right).
        PresignPut { key: "products/x/Café photo+1 (2).jpg", now: 1_799_999_999, expires_secs: 60, ..base.clone() },
    ];
    for case in &cases {
        assert_eq!(presign_put(case), botocore_url(case), "inputs: {case:?}");
    }
}
