//! People's names as shown on orders and emails.

/// A first or last name: trimmed, 1–100 characters, no control characters.
/// Any script is welcome; nothing is lower-cased or "corrected".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, String> {
        text_input::bounded(raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(PersonName::parse("  Zoë ").unwrap().as_str(), "Zoë");
        assert!(PersonName::parse("李").is_ok());
        assert!(PersonName::parse("").is_err());
        assert!(PersonName::parse("a\tb").is_err());
        assert!(PersonName::parse(&"x".repeat(101)).is_err());
    }
}
