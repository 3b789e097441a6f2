//! Links that act without signing in (one-click unsubscribe): the link
//! carries a value and an HMAC-SHA256 of it under a secret shared by the
//! service that writes the link (notifications) and the one that acts on
//! it (users). Each purpose signs `<purpose>:<value>`, so a signature made
//! for one purpose is worthless for another.

use hmac::{Hmac, Mac};
use sha2::Sha256;

fn mac(secret: &str, purpose: &str, value: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(purpose.as_bytes());
    m.update(b":");
    m.update(value.as_bytes());
    m
}

/// The signature of `value` for `purpose`, lower-case hex.
pub fn sign(secret: &str, purpose: &str, value: &str) -> String {
    mac(secret, purpose, value).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// True when `signature` (hex) is `value`'s for `purpose`; compared in
/// constant time. An empty secret verifies nothing.
pub fn verify(secret: &str, purpose: &str, value: &str, signature: &str) -> bool {
    if secret.is_empty() || signature.len() != 64 {
        return false;
    }
    let Some(bytes) = (0..64).step_by(2).map(|i| u8::from_str_radix(signature.get(i..i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>() else {
        return false;
    };
    mac(secret, purpose, value).verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_secret_purpose_and_value() {
        let s = sign("k", "unsubscribe", "u-1");
        assert_eq!(s.len(), 64);
        assert!(verify("k", "unsubscribe", "u-1", &s));
        assert!(verify("k", "unsubscribe", "u-1", &s.to_uppercase()));
        assert!(!verify("k", "unsubscribe", "u-2", &s));
        assert!(!verify("k", "other", "u-1", &s));
        assert!(!verify("k2", "unsubscribe", "u-1", &s));
        assert!(!verify("", "unsubscribe", "u-1", &sign("", "unsubscribe", "u-1")));
        assert!(!verify("k", "unsubscribe", "u-1", "zz"));
        assert!(!verify("k", "unsubscribe", "u-1", &"é".repeat(32)));
    }
}
