//! Property tests of the one rule for short text (names, search text,
//! address lines): any input is clean text or a stated problem.

use super::*;
use proptest::prelude::*;


/// Text with the characters that matter here: whitespace of every kind,
/// control characters, multi-byte letters, SQL wildcards.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,40}", "[ \t\n\r\u{0}\u{7f}\u{85}\u{a0}\u{2003}a-zé漢%_\\\\]{0,30}", any::<String>()]
}

proptest! {
    #[test]
    fn bounded_text_is_clean_or_refused(raw in text(), max in 0usize..50) {
        let t = raw.trim();
        match bounded(&raw, max) {
            Ok(clean) => {
                prop_assert_eq!(clean.as_str(), t);
                prop_assert!(!clean.is_empty() && clean.chars().count() <= max);
                prop_assert!(!clean.chars().any(char::is_control));
                prop_assert_eq!(bounded(&clean, max), Ok(clean.clone()), "idempotent");
            }
            Err(_) => prop_assert!(t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control)),
        }
    }

    #[test]
    fn like_patterns_match_the_text_literally(raw in text()) {
        let p = like_contains(&raw);
        prop_assert!(p.starts_with('%') && p.ends_with('%') && p.len() >= 2);
        // Undo the escaping: the text comes back, and no wildcard is left bare.
        let inner = &p[1..p.len() - 1];
        let mut back = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => back.push(chars.next().expect("an escape is followed by its character")),
                '%' | '_' => prop_assert!(false, "a bare wildcard in {:?}", p),
                c => back.push(c),
            }
        }
        prop_assert_eq!(back, raw);
    }
}
