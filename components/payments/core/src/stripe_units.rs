//! Stripe's amount units, where they differ from the minor unit the shop
//! counts in (ISO 4217's, `money`).
//!
//! Stripe takes and gives amounts in "the currency's smallest unit", but its
//! idea of that unit is not ISO's for two currencies the shop may price in
//! (docs.stripe.com/currencies, "Zero-decimal currencies" and "Special
//! cases"):
//! - **ISK**: ISO counts whole krónur (exponent 0); Stripe counts hundredths
//!   (`100` is 1 króna) and takes only multiples of 100.
//! - **MGA**: ISO counts hundredths (exponent 2); Stripe counts whole ariary
//!   (a zero-decimal currency).
//!
//! And Stripe takes a three-decimal currency's amount (BHD, JOD, KWD, OMR,
//! TND) only when its last digit is 0.
//!
//! Every amount the shop sends goes through [`to_stripe`], and every Stripe
//! object it reads (an answer, a signed event) through [`normalize`] before
//! anything looks at it, so amounts inside the shop are always in its own
//! units. Without this a 4800 ISK order was charged 48 kr and, the amount
//! echoed back matching, marked paid.

use serde_json::Value as Json;

/// The amount fields of the Stripe objects the shop reads.
const AMOUNT_FIELDS: [&str; 8] =
    ["amount", "amount_total", "amount_subtotal", "amount_received", "amount_refunded", "amount_captured", "amount_capturable", "unit_amount"];

const THREE_DECIMAL: [&str; 5] = ["BHD", "JOD", "KWD", "OMR", "TND"];

/// Why an amount cannot be sent to Stripe as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPayable(pub String);

/// `amount_minor` of `currency` (any case), in Stripe's units.
pub fn to_stripe(amount_minor: i64, currency: &str) -> Result<i64, NotPayable> {
    let code = currency.to_ascii_uppercase();
    match code.as_str() {
        "ISK" => amount_minor.checked_mul(100).ok_or_else(|| NotPayable(format!("{amount_minor} ISK is too large"))),
        "MGA" if amount_minor % 100 != 0 => {
            Err(NotPayable(format!("Stripe takes MGA in whole ariary only; {amount_minor} hundredths is not a whole number of them")))
        }
        "MGA" => Ok(amount_minor / 100),
        c if THREE_DECIMAL.contains(&c) && amount_minor % 10 != 0 => {
            Err(NotPayable(format!("Stripe takes {c} amounts only in whole hundredths (the last of the three decimals 0); {amount_minor} is not")))
        }
        _ => Ok(amount_minor),
    }
}

/// A Stripe amount of `currency` (any case), in the shop's units.
pub fn from_stripe(amount: i64, currency: &str) -> i64 {
    match currency.to_ascii_uppercase().as_str() {
        "ISK" => amount.div_euclid(100),
        "MGA" => amount.saturating_mul(100),
        _ => amount,
    }
}

/// Rewrite every amount in a Stripe object (and the objects inside it) in
/// the shop's units: each object's amount fields by its own `currency`.
pub fn normalize(value: &mut Json) {
    match value {
        Json::Object(map) => {
            if let Some(currency) = map.get("currency").and_then(Json::as_str).map(str::to_string) {
                for field in AMOUNT_FIELDS {
                    if let Some(amount) = map.get(field).and_then(Json::as_i64) {
                        map.insert(field.to_string(), Json::from(from_stripe(amount, &currency)));
                    }
                }
            }
            map.values_mut().for_each(normalize);
        }
        Json::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn most_currencies_are_counted_alike() {
        assert_eq!(to_stripe(1999, "usd"), Ok(1999));
        assert_eq!(to_stripe(4800, "JPY"), Ok(4800));
        assert_eq!(from_stripe(1999, "usd"), 1999);
    }

    #[test]
    fn isk_is_hundredths_at_stripe_and_mga_whole_ariary() {
        assert_eq!(to_stripe(4800, "isk"), Ok(480_000));
        assert_eq!(from_stripe(480_000, "isk"), 4800);
        assert_eq!(to_stripe(1_000_000, "MGA"), Ok(10_000));
        assert_eq!(from_stripe(10_000, "mga"), 1_000_000);
        assert!(to_stripe(1_000_050, "MGA").is_err(), "half an ariary cannot be charged");
    }

    #[test]
    fn three_decimal_amounts_end_in_zero() {
        assert_eq!(to_stripe(5120, "kwd"), Ok(5120));
        assert!(to_stripe(5124, "KWD").is_err());
        assert!(to_stripe(5124, "usd").is_ok());
    }

    #[test]
    fn objects_are_rewritten_by_their_own_currency_at_every_depth() {
        let mut page = json!({ "data": [
            { "id": "re_1", "amount": 480_000, "currency": "isk" },
            { "id": "re_2", "amount": 1999, "currency": "usd" },
        ] });
        normalize(&mut page);
        assert_eq!((page["data"][0]["amount"].as_i64(), page["data"][1]["amount"].as_i64()), (Some(4800), Some(1999)));
        let mut session = json!({ "amount_total": 960_000, "currency": "isk", "payment_intent": { "amount_received": 960_000, "currency": "isk" } });
        normalize(&mut session);
        assert_eq!((session["amount_total"].as_i64(), session["payment_intent"]["amount_received"].as_i64()), (Some(9600), Some(9600)));
    }
}
