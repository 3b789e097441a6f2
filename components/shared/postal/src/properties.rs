//! Property tests of address validation: any address a client sends is a
//! clean [`Address`] or a list of field problems, never a panic.

use super::*;
use proptest::option;
use proptest::prelude::*;


fn field() -> impl Strategy<Value = Option<String>> {
    option::of(prop_oneof![".{0,30}", "[ \t\n\u{0}a-zA-Z0-9é漢]{0,8}", "[a-zA-Z]{2}", ".{190,230}"])
}

fn input() -> impl Strategy<Value = AddressInput> {
    (field(), field(), field(), field(), field(), field(), field()).prop_map(|(name, line1, line2, city, region, postal_code, country)| AddressInput {
        name,
        line1,
        line2,
        city,
        region,
        postal_code,
        country,
    })
}

fn clean(s: &str, max: usize) -> bool {
    s == s.trim() && !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

proptest! {
    #[test]
    fn any_address_is_clean_or_its_problems_are_named(input in input(), prefix in prop_oneof![Just(""), Just("shipping_address")]) {
        let mut problems = FieldProblems::default();
        let parsed = input.parse(&mut problems, prefix);
        let problems = problems.finish();
        match parsed {
            Some(a) => {
                prop_assert!(problems.is_ok());
                prop_assert!(clean(&a.name, 200) && clean(&a.line1, 200) && clean(&a.city, 100) && clean(&a.postal_code, 20));
                prop_assert!(a.line2.as_deref().is_none_or(|l| clean(l, 200)) && a.region.as_deref().is_none_or(|r| clean(r, 100)));
                prop_assert!(a.country.len() == 2 && a.country.bytes().all(|b| b.is_ascii_uppercase()));
                // What was accepted is accepted again, unchanged.
                let again = AddressInput {
                    name: Some(a.name.clone()),
                    line1: Some(a.line1.clone()),
                    line2: a.line2.clone(),
                    city: Some(a.city.clone()),
                    region: a.region.clone(),
                    postal_code: Some(a.postal_code.clone()),
                    country: Some(a.country.clone()),
                };
                prop_assert_eq!(again.parse(&mut FieldProblems::default(), prefix), Some(a));
            }
            None => {
                let problems = problems.unwrap_err();
                prop_assert!(!problems.is_empty());
                prop_assert!(problems.keys().all(|k| prefix.is_empty() || k.starts_with(prefix)));
            }
        }
    }

    #[test]
    fn any_json_is_an_address_input_or_an_error(text in prop_oneof![".{0,60}", r#"\{"(name|line1|country|zip)": ?("[a-z]{0,5}"|[0-9]{1,3}|null|\[\])\}"#]) {
        if let Ok(input) = serde_json::from_str::<AddressInput>(&text) {
            input.parse(&mut FieldProblems::default(), "");
        }
    }
}
