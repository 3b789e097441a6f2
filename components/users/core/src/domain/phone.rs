//! Phone numbers for SMS, in E.164.

/// A phone number in E.164: `+`, a country code that does not start with 0,
/// and at most 15 digits in all (ITU-T E.164). Spaces, hyphens, dots and
/// parentheses between digits are accepted as people write them and
/// dropped; the leading `+` is required, since a national number means
/// nothing without its country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Fewest digits accepted: a country code and a short subscriber number.
    pub const MIN_DIGITS: usize = 8;
    pub const MAX_DIGITS: usize = 15;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let problem = || {
            format!(
                "must be an international number in E.164 form: + and the country code, {}-{} digits in all (e.g. +14155550123)",
                Self::MIN_DIGITS,
                Self::MAX_DIGITS
            )
        };
        let rest = raw.trim().strip_prefix('+').ok_or_else(problem)?;
        if rest.chars().any(|c| !(c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))) {
            return Err(problem());
        }
        let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len()) || digits.starts_with('0') {
            return Err(problem());
        }
        Ok(Self(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_and_normalised() {
        assert_eq!(PhoneNumber::parse("+14155550123").unwrap().as_str(), "+14155550123");
        assert_eq!(PhoneNumber::parse(" +44 (20) 7946-0958 ").unwrap().as_str(), "+442079460958");
        assert_eq!(PhoneNumber::parse("+49.30.901820").unwrap().as_str(), "+4930901820");
        assert_eq!(PhoneNumber::parse("+123456789012345").unwrap().as_str(), "+123456789012345");
    }

    #[test]
    fn rejected() {
        for bad in ["", "4155550123", "+", "+0123456789", "+1234567", "+1234567890123456", "+1 415 555 0123 ext 4", "++14155550123", "+1415555０123", "+1\n4155550123"] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?}");
        }
    }
}
