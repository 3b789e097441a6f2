//! AWS Signature Version 4, query-string form: presigned S3 `PUT` URLs,
//! computed here so no SDK (and no network call) is needed to hand an admin
//! an upload URL.
//!
//! The output matches botocore's `generate_presigned_url("put_object", ...)`
//! byte for byte for the same inputs and clock, with path-style addressing
//! (`{endpoint}/{bucket}/{key}`); `tests/presign_matches_botocore.rs` checks
//! it against a pinned botocore. The steps are AWS's "Create a signed AWS
//! API request" (canonical request, string to sign, derived key):
//!
//! - the payload is `UNSIGNED-PAYLOAD` (the body is unknown when signing);
//! - the signed headers are `content-length`, `content-type` and `host`, so
//!   the upload must send exactly the declared length and type, or the
//!   storage answers `403 SignatureDoesNotMatch`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What to sign. `endpoint` is `scheme://host[:port]` with no path.
#[derive(Debug, Clone)]
pub struct PresignPut<'a> {
    pub endpoint: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub region: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub content_type: &'a str,
    pub content_length: u64,
    /// Unix seconds the signature is made at (`X-Amz-Date`).
    pub now: i64,
    /// How long the URL works, in seconds (`X-Amz-Expires`, 1..=604800).
    pub expires_secs: u32,
}

/// Percent-encode as SigV4 requires: every byte except the RFC 3986
/// unreserved characters (`A-Z a-z 0-9 - _ . ~`), upper-case hex; `/` is
/// kept when `keep_slash` (object key paths).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `host[:port]` of an endpoint URL, the port only when it is not the
/// scheme's default (as HTTP clients send the `Host` header).
pub fn host_of(endpoint: &str) -> &str {
    let rest = endpoint.split_once("://").map(|(_, r)| r).unwrap_or(endpoint);
    let host = rest.split('/').next().unwrap_or(rest);
    match (endpoint.starts_with("https://"), host.rsplit_once(':')) {
        (true, Some((h, "443"))) | (false, Some((h, "80"))) => h,
        _ => host,
    }
}

/// The presigned URL.
pub fn presign_put(p: &PresignPut) -> String {
    let stamp: String = clock::format_rfc3339(p.now).chars().filter(|c| *c != '-' && *c != ':').collect();
    let date = &stamp[..8];
    let scope = format!("{date}/{}/s3/aws4_request", p.region);
    let host = host_of(p.endpoint);
    let path = format!("/{}/{}", uri_encode(p.bucket, false), uri_encode(p.key, true));
    let signed_headers = "content-length;content-type;host";
    // Already in the byte order SigV4 sorts the canonical query string in.
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={stamp}&X-Amz-Expires={}&X-Amz-SignedHeaders={}",
        uri_encode(&format!("{}/{scope}", p.access_key_id), false),
        p.expires_secs,
        uri_encode(signed_headers, false),
    );
    let canonical_request = format!(
        "PUT\n{path}\n{query}\ncontent-length:{}\ncontent-type:{}\nhost:{host}\n\n{signed_headers}\nUNSIGNED-PAYLOAD",
        p.content_length,
        p.content_type.trim(),
    );
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}", hex(&Sha256::digest(canonical_request.as_bytes())));
    let k_date = hmac(format!("AWS4{}", p.secret_access_key).as_bytes(), date);
    let k_region = hmac(&k_date, p.region);
    let k_service = hmac(&k_region, "s3");
    let k_signing = hmac(&k_service, "aws4_request");
    let signature = hex(&hmac(&k_signing, &string_to_sign));
    format!("{}{path}?{query}&X-Amz-Signature={signature}", p.endpoint.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(uri_encode("a-b_c.d~e/f g+h", true), "a-b_c.d~e/f%20g%2Bh");
        assert_eq!(uri_encode("AKID/20260101/us-east-1/s3/aws4_request", false), "AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request");
        assert_eq!(uri_encode("é", true), "%C3%A9");
    }

    #[test]
    fn hosts_drop_default_ports_only() {
        assert_eq!(host_of("https://s3.eu-west-1.amazonaws.com"), "s3.eu-west-1.amazonaws.com");
        assert_eq!(host_of("https://r2.example.com:443"), "r2.example.com");
        assert_eq!(host_of("http://127.0.0.1:9000"), "127.0.0.1:9000");
        assert_eq!(host_of("http://minio:80"), "minio");
    }

    /// AWS's documented signing-key derivation example (IAM docs, "Examples
    /// of how to derive a signing key"): secret
    /// `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, 20120215, us-east-1, iam.
    #[test]
    fn derives_the_documented_signing_key() {
        let k_date = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215");
        let k_region = hmac(&k_date, "us-east-1");
        let k_service = hmac(&k_region, "iam");
        let k_signing = hmac(&k_service, "aws4_request");
        assert_eq!(hex(&k_signing), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    }
}
