//! A fake S3-compatible object storage on loopback. It accepts a `PUT` only
//! with a valid presigned query-string signature (AWS SigV4, verified here
//! from the request as received, by code that shares nothing with the
//! catalog's signer), within its expiry, with a body of exactly the signed
//! `Content-Length`; it answers S3's XML errors otherwise. Stored objects
//! are served back by `GET /{bucket}/{key}` (a public bucket), and every
//! `PUT` is recorded for assertions.

use crate::fake_stripe::{form_urlencoded_parse, read_request, serve_loopback};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

/// Credentials and bucket the suite configures the app with.
pub const BUCKET: &str = "suite-images";
pub const REGION: &str = "eu-central-1";
pub const ACCESS_KEY_ID: &str = "AKIASUITE0000000000";
pub const SECRET_ACCESS_KEY: &str = "suite/Secret+Key0000000000000000000000000";

/// One `PUT` the fake received, and what it answered.
#[derive(Debug, Clone)]
pub struct PutCall {
    pub key: String,
    pub status: u16,
    /// The S3 error code when refused.
    pub error: Option<String>,
}

#[derive(Default)]
struct State {
    objects: HashMap<String, (String, Vec<u8>)>,
    puts: Vec<PutCall>,
}

#[derive(Clone)]
pub struct FakeObjectStorage {
    pub url: String,
    state: Arc<Mutex<State>>,
}

fn s3_error(mut stream: TcpStream, status: u16, code: &str) {
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{code}</Message></Error>");
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// SigV4's encoding of one query component: unreserved bytes as they are.
fn aws_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Seconds since the epoch of `YYYYMMDDTHHMMSSZ`.
fn parse_amz_date(s: &str) -> Option<i64> {
    if s.len() != 16 || !s.ends_with('Z') || s.as_bytes()[8] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (n(0..4)?, n(4..6)?, n(6..8)?, n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Check a presigned request; `Err(S3 error code)` when it must be refused.
fn verify(method: &str, raw_path: &str, query: &[(String, String)], headers: &HashMap<String, String>, body_len: usize) -> Result<(), &'static str> {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if q("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err("AccessDenied");
    }
    let credential = q("X-Amz-Credential").ok_or("AccessDenied")?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = parts[..] else { return Err("AuthorizationQueryParametersError") };
    if key_id != ACCESS_KEY_ID {
        return Err("InvalidAccessKeyId");
    }
    if region != REGION || service != "s3" || terminator != "aws4_request" {
        return Err("AuthorizationQueryParametersError");
    }
    let stamp = q("X-Amz-Date").ok_or("AuthorizationQueryParametersError")?;
    let signed_at = parse_amz_date(stamp).ok_or("AuthorizationQueryParametersError")?;
    if !stamp.starts_with(date) {
        return Err("AuthorizationQueryParametersError");
    }
    let expires: i64 = q("X-Amz-Expires").and_then(|e| e.parse().ok()).ok_or("AuthorizationQueryParametersError")?;
    if crate::now() > signed_at + expires {
        return Err("AccessDenied"); // S3: "Request has expired".
    }
    let signed_headers = q("X-Amz-SignedHeaders").ok_or("AuthorizationQueryParametersError")?;
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") {
        return Err("AuthorizationQueryParametersError");
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let value = headers.get(*name).ok_or("SignatureDoesNotMatch")?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let mut pairs: Vec<(String, String)> =
        query.iter().filter(|(k, _)| k != "X-Amz-Signature").map(|(k, v)| (aws_encode(k), aws_encode(v))).collect();
    pairs.sort();
    let canonical_query: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let canonical_request = format!(
        "{method}\n{raw_path}\n{}\n{canonical_headers}\n{signed_headers}\nUNSIGNED-PAYLOAD",
        canonical_query.join("&")
    );
    let hashed: String = Sha256::digest(canonical_request.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let to_sign = format!("AWS4-HMAC-SHA256\n{stamp}\n{date}/{region}/s3/aws4_request\n{hashed}");
    let mut key = format!("AWS4{SECRET_ACCESS_KEY}").into_bytes();
    for part in [date, region, "s3", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let expected: String = hmac_sha256(&key, to_sign.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    if q("X-Amz-Signature") != Some(expected.as_str()) {
        return Err("SignatureDoesNotMatch");
    }
    // The signed length is the length the body must have.
    if headers.get("content-length").and_then(|l| l.parse::<usize>().ok()) != Some(body_len) {
        return Err("IncompleteBody");
    }
    Ok(())
}

impl FakeObjectStorage {
    pub fn start(addr: &str) -> FakeObjectStorage {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let url = serve_loopback("object storage", addr, move |stream| {
            let Some((method, target, headers, body)) = read_request(&stream) else { return };
            let (raw_path, raw_query) = target.split_once('?').unwrap_or((target.as_str(), ""));
            let Some(key) = raw_path.strip_prefix(&format!("/{BUCKET}/")).map(|k| String::from_utf8_lossy(&crate::fake_stripe::percent_decode(k)).into_owned()) else {
                return s3_error(stream, 404, "NoSuchBucket");
            };
            match method.as_str() {
                "PUT" => {
                    let query = form_urlencoded_parse(raw_query.as_bytes());
                    let outcome = verify("PUT", raw_path, &query, &headers, body.len());
                    let mut st = shared.lock().unwrap();
                    st.puts.push(PutCall { key: key.clone(), status: if outcome.is_ok() { 200 } else { 403 }, error: outcome.err().map(str::to_string) });
                    match outcome {
                        Ok(()) => {
                            let content_type = headers.get("content-type").cloned().unwrap_or_default();
                            st.objects.insert(key, (content_type, body));
                            drop(st);
                            let mut stream = stream;
                            let _ = write!(stream, "HTTP/1.1 200 OK\r\netag: \"fake\"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                        }
                        Err(code) => {
                            drop(st);
                            s3_error(stream, if code == "IncompleteBody" { 400 } else { 403 }, code)
                        }
                    }
                }
                "GET" => {
                    let found = shared.lock().unwrap().objects.get(&key).cloned();
                    match found {
                        Some((content_type, bytes)) => {
                            let mut stream = stream;
                            let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", bytes.len());
                            let _ = stream.write_all(&bytes);
                        }
                        None => s3_error(stream, 404, "NoSuchKey"),
                    }
                }
                _ => s3_error(stream, 405, "MethodNotAllowed"),
            }
        });
        FakeObjectStorage { url, state }
    }

    /// The base URL of stored objects (what the app's `object_storage_public_url` is).
    pub fn public_url(&self) -> String {
        format!("{}/{BUCKET}", self.url)
    }

    /// Every `PUT`, in order.
    pub fn puts(&self) -> Vec<PutCall> {
        self.state.lock().unwrap().puts.clone()
    }

    /// The stored object: (content type, bytes).
    pub fn object(&self, key: &str) -> Option<(String, Vec<u8>)> {
        self.state.lock().unwrap().objects.get(key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20260101T000000Z"), Some(1_767_225_600));
        assert_eq!(parse_amz_date("2026-01-01"), None);
    }
}
