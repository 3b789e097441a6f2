//! Money for the shop: an integer amount in the currency's minor unit
//! (cents for USD, yen for JPY, fils for KWD) together with its ISO 4217
//! code. There are no floats anywhere: arithmetic is checked integer
//! arithmetic, and two amounts in different currencies never mix.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An active ISO 4217 currency code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// Why a currency code was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCurrency(pub String);

impl fmt::Display for UnknownCurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not an ISO 4217 currency code", self.0)
    }
}

impl std::error::Error for UnknownCurrency {}

/// Active ISO 4217 codes and the number of digits of their minor unit.
/// Codes without a minor unit (JPY, KRW, ...) have 0; the dinars have 3.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2), ("AUD", 2),
    ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2), ("BHD", 3), ("BIF", 0),
    ("BMD", 2), ("BND", 2), ("BOB", 2), ("BRL", 2), ("BSD", 2), ("BTN", 2), ("BWP", 2), ("BYN", 2),
    ("BZD", 2), ("CAD", 2), ("CDF", 2), ("CHF", 2), ("CLP", 0), ("CNY", 2), ("COP", 2), ("CRC", 2),
    ("CUP", 2), ("CVE", 2), ("CZK", 2), ("DJF", 0), ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2),
    ("ERN", 2), ("ETB", 2), ("EUR", 2), ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2),
    ("GIP", 2), ("GMD", 2), ("GNF", 0), ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HTG", 2),
    ("HUF", 2), ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0), ("JMD", 2),
    ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2), ("KMF", 0), ("KPW", 2), ("KRW", 0),
    ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2), ("LBP", 2), ("LKR", 2), ("LRD", 2), ("LSL", 2),
    ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2), ("MKD", 2), ("MMK", 2), ("MNT", 2), ("MOP", 2),
    ("MRU", 2), ("MUR", 2), ("MVR", 2), ("MWK", 2), ("MXN", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2),
    ("NGN", 2), ("NIO", 2), ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2),
    ("PGK", 2), ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2), ("RSD", 2),
    ("RUB", 2), ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2), ("SGD", 2),
    ("SHP", 2), ("SLE", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2), ("STN", 2), ("SVC", 2), ("SYP", 2),
    ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2), ("TND", 3), ("TOP", 2), ("TRY", 2), ("TTD", 2),
    ("TWD", 2), ("TZS", 2), ("UAH", 2), ("UGX", 0), ("USD", 2), ("UYU", 2), ("UZS", 2), ("VES", 2),
    ("VND", 0), ("VUV", 0), ("WST", 2), ("XAF", 0), ("XCD", 2), ("XOF", 0), ("XPF", 0), ("YER", 2),
    ("ZAR", 2), ("ZMW", 2), ("ZWL", 2),
];

impl Currency {
    /// Parse an ISO 4217 code. Lower case is accepted and normalised.
    pub fn parse(raw: &str) -> Result<Self, UnknownCurrency> {
        let upper = raw.trim().to_ascii_uppercase();
        if CURRENCIES.iter().any(|(code, _)| *code == upper) {
            let b = upper.as_bytes();
            Ok(Self([b[0], b[1], b[2]]))
        } else {
            Err(UnknownCurrency(raw.to_string()))
        }
    }

    /// The three-letter code.
    pub fn code(&self) -> &str {
        // Only ASCII letters from the table are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits of the minor unit: 2 for USD, 0 for JPY, 3 for KWD.
    pub fn minor_digits(&self) -> u8 {
        CURRENCIES
            .iter()
            .find(|(code, _)| *code == self.code())
            .map(|(_, d)| *d)
            .unwrap_or(2)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Currency::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An amount of money: integer minor units plus currency.
///
/// Serialised as `{"amount_minor": 1999, "currency": "USD"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: Currency,
}

/// Why an arithmetic operation on money was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyError {
    CurrencyMismatch(Currency, Currency),
    Overflow,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CurrencyMismatch(a, b) => write!(f, "cannot combine {a} with {b}"),
            Self::Overflow => f.write_str("amount out of range"),
        }
    }
}

impl std::error::Error for MoneyError {}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Self {
        Self { amount_minor, currency }
    }

    /// Zero in a currency.
    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// Sum of two amounts in the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        self.amount_minor
            .checked_add(other.amount_minor)
            .map(|a| Money::new(a, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// This amount times a quantity (a line total).
    pub fn checked_mul(self, quantity: i64) -> Result<Money, MoneyError> {
        self.amount_minor
            .checked_mul(quantity)
            .map(|a| Money::new(a, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// A plain decimal rendering with the currency's digits: `19.99 USD`, `4800 JPY`.
    pub fn to_decimal_string(&self) -> String {
        let digits = self.currency.minor_digits() as u32;
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs = self.amount_minor.unsigned_abs();
        if digits == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10u64.pow(digits);
        format!("{sign}{}.{:0width$}", abs / scale, abs % scale, width = digits as usize)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn parses_known_codes_only() {
        assert_eq!(c("usd").code(), "USD");
        assert_eq!(c(" EUR ").code(), "EUR");
        for bad in ["", "US", "USDD", "XYZ", "12$", "€"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn minor_digits_follow_iso_4217() {
        assert_eq!(c("USD").minor_digits(), 2);
        assert_eq!(c("JPY").minor_digits(), 0);
        assert_eq!(c("KWD").minor_digits(), 3);
    }

    #[test]
    fn formats_without_floats() {
        assert_eq!(Money::new(1999, c("USD")).to_string(), "19.99 USD");
        assert_eq!(Money::new(5, c("USD")).to_decimal_string(), "0.05");
        assert_eq!(Money::new(4800, c("JPY")).to_decimal_string(), "4800");
        assert_eq!(Money::new(1500, c("KWD")).to_decimal_string(), "1.500");
        assert_eq!(Money::new(-250, c("EUR")).to_decimal_string(), "-2.50");
    }

    #[test]
    fn arithmetic_is_checked_and_single_currency() {
        let a = Money::new(1000, c("USD"));
        assert_eq!(a.checked_add(Money::new(1, c("USD"))).unwrap().amount_minor, 1001);
        assert!(matches!(a.checked_add(Money::new(1, c("EUR"))), Err(MoneyError::CurrencyMismatch(..))));
        assert_eq!(a.checked_mul(3).unwrap().amount_minor, 3000);
        assert_eq!(Money::new(i64::MAX, c("USD")).checked_mul(2), Err(MoneyError::Overflow));
    }

    #[test]
    fn json_shape() {
        let m = Money::new(1999, c("USD"));
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"amount_minor":1999,"currency":"USD"}"#);
        let back: Money = serde_json::from_str(r#"{"amount_minor":5,"currency":"jpy"}"#).unwrap();
        assert_eq!(back.currency.code(), "JPY");
        assert!(serde_json::from_str::<Money>(r#"{"amount_minor":5,"currency":"ABC"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount_minor":5.5,"currency":"USD"}"#).is_err());
    }
}
