//! Property tests of `Stripe-Signature` verification: whatever the header
//! and body, a verdict and never a panic; a header made by signing is
//! accepted, and changing any single byte of it, or of the body, is not.

use super::*;
use proptest::collection::vec;
use proptest::prelude::*;

const SECRET: &str = "whsec_properties";
const NOW: i64 = 1_800_000_000;


/// Headers shaped like Stripe's, and broken ones.
fn header_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        any::<i64>().prop_map(|t| format!("t={t}")),
        "t=[-+0-9]{0,22}",
        "v1=[0-9a-fA-F+-]{0,70}",
        "v0=[0-9a-f]{0,8}",
        "[a-z0-9]{0,3}=?.{0,8}",
        Just(String::new()),
    ];
    prop_oneof![vec(part, 0..6).prop_map(|p| p.join(",")), ".{0,200}"]
}

proptest! {
    #[test]
    fn any_header_gets_a_verdict(header in header_text(), body in vec(any::<u8>(), 0..64), now in prop_oneof![Just(NOW), any::<i64>()], tolerance in prop_oneof![Just(SIGNATURE_TOLERANCE_SECS), any::<i64>()]) {
        let _ = verify_signature(Some(&header), &body, SECRET, now, tolerance);
    }

    #[test]
    fn a_signed_event_verifies_and_any_one_byte_change_does_not(body in vec(any::<u8>(), 0..128), age in -SIGNATURE_TOLERANCE_SECS..=SIGNATURE_TOLERANCE_SECS, at in any::<prop::sample::Index>(), replacement in 0x20u8..0x7f) {
        let t = NOW - age;
        let header = sign(&body, SECRET, t);
        prop_assert_eq!(verify_signature(Some(&header), &body, SECRET, NOW, SIGNATURE_TOLERANCE_SECS), Ok(()));

        let mut altered = header.clone().into_bytes();
        let i = at.index(altered.len());
        prop_assume!(altered[i] != replacement);
        altered[i] = replacement;
        let altered = String::from_utf8(altered).unwrap();
        prop_assert!(verify_signature(Some(&altered), &body, SECRET, NOW, SIGNATURE_TOLERANCE_SECS).is_err(), "{} accepted", altered);

        if !body.is_empty() {
            let mut changed = body.clone();
            let j = at.index(changed.len());
            changed[j] = changed[j].wrapping_add(1);
            prop_assert_eq!(verify_signature(Some(&header), &changed, SECRET, NOW, SIGNATURE_TOLERANCE_SECS), Err(SignatureError::Mismatch));
        }
        prop_assert_eq!(verify_signature(Some(&header), &body, "whsec_other", NOW, SIGNATURE_TOLERANCE_SECS), Err(SignatureError::Mismatch));
    }

    #[test]
    fn outside_the_tolerance_is_stale(body in vec(any::<u8>(), 0..16), off in (SIGNATURE_TOLERANCE_SECS + 1)..=NOW, later in any::<bool>()) {
        // (A negative timestamp is malformed: Unix seconds only.)
        let t = if later { NOW.saturating_mul(2) + off } else { NOW - off };
        let header = sign(&body, SECRET, t);
        prop_assert_eq!(verify_signature(Some(&header), &body, SECRET, NOW, SIGNATURE_TOLERANCE_SECS), Err(SignatureError::Stale));
    }
}

#[test]
fn far_away_timestamps_are_stale_not_a_panic() {
    // Regression: `(now - t).abs()` overflowed.
    for t in ["-9223372036854775808", "9223372036854775807"] {
        let header = format!("t={t},v1={}", "00".repeat(32));
        assert!(verify_signature(Some(&header), b"{}", SECRET, NOW, 300).is_err(), "{t}");
    }
    let header = format!("t=9223372036854775807,v1={}", "00".repeat(32));
    assert_eq!(verify_signature(Some(&header), b"{}", SECRET, i64::MIN, 300), Err(SignatureError::Stale));
}

#[test]
fn only_the_canonical_form_is_read() {
    let body = br#"{"id":"evt_1"}"#;
    let header = sign(body, SECRET, NOW);
    let (t, hex) = header.split_once(",v1=").unwrap();
    // Regression: `from_str_radix` took `+f` for `0f`, and upper case.
    let plus = format!("{t},v1=+{}", &hex[1..]);
    if hex.starts_with('0') {
        assert_eq!(verify_signature(Some(&plus), body, SECRET, NOW, 300), Err(SignatureError::Malformed));
    }
    let upper = format!("{t},v1={}", hex.to_ascii_uppercase());
    assert_eq!(verify_signature(Some(&upper), body, SECRET, NOW, 300), Err(SignatureError::Malformed));
    let signed_t = format!("t=+{},v1={hex}", &t[2..]);
    assert_eq!(verify_signature(Some(&signed_t), body, SECRET, NOW, 300), Err(SignatureError::Malformed));
    let two_t = format!("{t},t=1,v1={hex}");
    assert_eq!(verify_signature(Some(&two_t), body, SECRET, NOW, 300), Err(SignatureError::Malformed));
}
