//! Postal addresses, validated the same way wherever a customer gives one:
//! the address book and an order's shipping address.

use serde::{Deserialize, Serialize};
use text_input::FieldProblems;

/// A postal address, each part trimmed and bounded. Countries are ISO 3166-1
/// alpha-2 codes (upper-cased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub postal_code: String,
    pub country: String,
}

/// An address as clients send it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub name: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

impl AddressInput {
    /// Validate, recording problems under `<prefix>.<field>` (or `<field>`
    /// with an empty prefix).
    pub fn parse(&self, p: &mut FieldProblems, prefix: &str) -> Option<Address> {
        let key = |f: &str| if prefix.is_empty() { f.to_string() } else { format!("{prefix}.{f}") };
        let req = |p: &mut FieldProblems, f: &str, v: &Option<String>, max: usize| p.check(&key(f), text_input::bounded(v.as_deref().unwrap_or(""), max));
        let opt = |p: &mut FieldProblems, f: &str, v: &Option<String>, max: usize| match v.as_deref().map(str::trim) {
            None | Some("") => Some(None),
            Some(s) => p.check(&key(f), text_input::bounded(s, max)).map(Some),
        };
        let name = req(p, "name", &self.name, 200);
        let line1 = req(p, "line1", &self.line1, 200);
        let line2 = opt(p, "line2", &self.line2, 200);
        let city = req(p, "city", &self.city, 100);
        let region = opt(p, "region", &self.region, 100);
        let postal_code = req(p, "postal_code", &self.postal_code, 20);
        let country = p.check(
            &key("country"),
            match self.country.as_deref().map(str::trim) {
                Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => Ok(c.to_ascii_uppercase()),
                _ => Err("must be a two-letter ISO 3166-1 country code".to_string()),
            },
        );
        Some(Address { name: name?, line1: line1?, line2: line2?, city: city?, region: region?, postal_code: postal_code?, country: country? })
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AddressInput {
        AddressInput {
            name: Some("Ann Lee".into()),
            line1: Some("1 Main St".into()),
            line2: None,
            city: Some("Springfield".into()),
            region: Some(" ".into()),
            postal_code: Some("12345".into()),
            country: Some("us".into()),
        }
    }

    #[test]
    fn parses_and_normalises() {
        let mut p = FieldProblems::default();
        let a = input().parse(&mut p, "shipping_address").unwrap();
        assert_eq!((a.country.as_str(), a.region), ("US", None));
        assert!(p.finish().is_ok());
    }

    #[test]
    fn reports_every_problem_under_the_prefix() {
        let bad = AddressInput { name: None, country: Some("USA".into()), ..input() };
        let mut p = FieldProblems::default();
        assert!(bad.parse(&mut p, "shipping_address").is_none());
        let problems = p.finish().unwrap_err();
        assert!(problems.contains_key("shipping_address.name") && problems.contains_key("shipping_address.country"));
        let mut p = FieldProblems::default();
        assert!(bad.parse(&mut p, "").is_none());
        let problems = p.finish().unwrap_err();
        assert!(problems.contains_key("name") && problems.contains_key("country"), "{problems:?}");
    }
}
