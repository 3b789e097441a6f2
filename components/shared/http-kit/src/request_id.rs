//! Request ids: one per request, echoed in `x-request-id` and in the log line.
//!
//! An incoming id is kept when it is sane (a proxy or the storefront may have
//! assigned one already), so a request can be followed across systems. Anything
//! else is replaced, because ids end up in logs and must not carry injected
//! text.

/// Keep an incoming id only if it is 1..=128 characters of `[A-Za-z0-9._:-]`.
pub fn accept_incoming(raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim();
    let sane = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    sane.then(|| raw.to_string())
}

/// A fresh random id: 16 random bytes as 32 hex digits.
pub fn generate() -> String {
    crate::trace::random_hex::<16>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_the_rest() {
        assert_eq!(accept_incoming(Some("abc-123.x_y:z")), Some("abc-123.x_y:z".into()));
        assert_eq!(accept_incoming(Some("  padded ")), Some("padded".into()));
        assert_eq!(accept_incoming(Some("")), None);
        assert_eq!(accept_incoming(Some("has space")), None);
        assert_eq!(accept_incoming(Some("line\nbreak")), None);
        assert_eq!(accept_incoming(Some(&"a".repeat(129))), None);
        assert_eq!(accept_incoming(None), None);
    }

    #[test]
    fn generated_ids_are_unique_hex() {
        let a = generate();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, generate());
    }
}
