//! Property tests of currency codes and amounts as clients send them.

use super::*;
use proptest::prelude::*;


fn currency() -> impl Strategy<Value = Currency> {
    proptest::sample::select(CURRENCIES).prop_map(|(code, _)| Currency::parse(code).unwrap())
}

/// The amount back from [`Money::to_decimal_string`] (digits, one optional
/// dot, an optional leading minus), as a client reading it would.
fn read_decimal(text: &str, digits: u8) -> Option<i128> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, f),
        None => (unsigned, ""),
    };
    if fraction.len() != digits as usize || whole.is_empty() || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i128 = format!("{whole}{fraction}").parse().ok()?;
    Some(if negative { -n } else { n })
}

proptest! {
    #[test]
    fn any_code_is_a_currency_or_refused(raw in prop_oneof![".{0,8}", "[a-zA-Z]{3}", "\\s{0,2}[a-zA-Z]{3}\\s{0,2}"]) {
        if let Ok(c) = Currency::parse(&raw) {
            prop_assert_eq!(c.code(), raw.trim().to_ascii_uppercase());
            prop_assert!(c.code().len() == 3 && c.code().bytes().all(|b| b.is_ascii_uppercase()));
            prop_assert_eq!(Currency::parse(c.code()), Ok(c));
            prop_assert!(c.minor_digits() <= 3);
        }
    }

    #[test]
    fn codes_round_trip_in_any_case(c in currency()) {
        prop_assert_eq!(Currency::parse(&c.code().to_ascii_lowercase()), Ok(c));
        prop_assert_eq!(serde_json::from_str::<Currency>(&serde_json::to_string(&c).unwrap()).unwrap(), c);
    }

    #[test]
    fn money_round_trips_through_json(amount in any::<i64>(), c in currency()) {
        let m = Money::new(amount, c);
        let back: Money = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        prop_assert_eq!(back, m);
    }

    #[test]
    fn decimal_text_reads_back_as_the_amount(amount in prop_oneof![any::<i64>(), -100_000i64..100_000, Just(i64::MIN), Just(i64::MAX)], c in currency()) {
        let m = Money::new(amount, c);
        let text = m.to_decimal_string();
        prop_assert_eq!(read_decimal(&text, c.minor_digits()), Some(amount as i128), "{}", text);
        prop_assert_eq!(m.to_string(), format!("{text} {}", c.code()));
    }

    #[test]
    fn arithmetic_is_checked(a in any::<i64>(), b in any::<i64>(), q in any::<i64>(), c in currency(), d in currency()) {
        let (x, y) = (Money::new(a, c), Money::new(b, d));
        match x.checked_add(y) {
            Ok(sum) => prop_assert_eq!(Some(sum.amount_minor), a.checked_add(b)),
            Err(MoneyError::CurrencyMismatch(..)) => prop_assert_ne!(c, d),
            Err(MoneyError::Overflow) => prop_assert!(c == d && a.checked_add(b).is_none()),
        }
        prop_assert_eq!(x.checked_mul(q).ok().map(|m| m.amount_minor), a.checked_mul(q));
    }

    #[test]
    fn any_json_is_money_or_an_error(amount in prop_oneof![any::<i64>().prop_map(|n| n.to_string()), "-?[0-9]{1,30}(\\.[0-9]{1,3})?", Just("null".to_string())], code in ".{0,5}") {
        let text = format!(r#"{{"amount_minor":{amount},"currency":{}}}"#, serde_json::to_string(&code).unwrap());
        if let Ok(m) = serde_json::from_str::<Money>(&text) {
            prop_assert_eq!(m.amount_minor.to_string(), amount);
        }
    }
}
