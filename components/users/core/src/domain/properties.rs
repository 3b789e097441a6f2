//! Property tests of what sign-up, sign-in and the profile read from
//! requests: any text is a value or a stated problem (a 422), never a
//! panic; what is accepted is normalised once and accepted again as is.

use super::*;
use proptest::prelude::*;


fn email_like() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[ a-zA-Z0-9._%+\"()\\-]{1,20}@[a-zA-Z0-9\\-.İß]{1,20}",
        "[a-z]{1,70}@[a-z]{1,63}\\.[a-z]{2,70}",
    ]
}

proptest! {
    #[test]
    fn emails_are_normalised_or_refused(raw in email_like()) {
        if let Ok(e) = Email::parse(&raw) {
            let s = e.as_str();
            prop_assert!(s.chars().count() <= 254 && s.matches('@').count() == 1);
            prop_assert_eq!(s, raw.trim().to_lowercase());
            prop_assert_eq!(Email::parse(s), Ok(e.clone()), "accepted again as is");
        }
    }

    #[test]
    fn phone_numbers_are_e164_or_refused(raw in prop_oneof![".{0,24}", "\\+?[0-9 ().\\-]{0,24}", "[+][1-9][0-9]{7,14}"]) {
        if let Ok(p) = PhoneNumber::parse(&raw) {
            let digits = &p.as_str()[1..];
            prop_assert!(p.as_str().starts_with('+') && !digits.starts_with('0'));
            prop_assert!((PhoneNumber::MIN_DIGITS..=PhoneNumber::MAX_DIGITS).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()));
            prop_assert_eq!(PhoneNumber::parse(p.as_str()), Ok(p.clone()));
        }
    }

    #[test]
    fn passwords_and_names_never_panic(raw in prop_oneof![".{0,80}", any::<String>()], email in ".{0,20}") {
        if let Ok(p) = NewPassword::parse(&raw, &email) {
            prop_assert_eq!(p.expose(), raw.as_str(), "a password is never altered");
        }
        if let Ok(n) = PersonName::parse(&raw) {
            prop_assert_eq!(n.as_str(), raw.trim());
            prop_assert!(n.as_str().chars().count() <= PersonName::MAX_CHARS);
        }
    }
}
