//! Identifiers.

use serde::{Serialize, Serializer};
use std::fmt;

/// A product id: a UUID in canonical lower-case hyphenated form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductId(String);

/// Why an id was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedId;

impl fmt::Display for MalformedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("must be a UUID such as 3f0c8a4e-8d1b-4c5e-9a77-2b1f0e6d5c4a")
    }
}

impl ProductId {
    /// Parse a UUID (any version), accepting upper case and normalising it.
    pub fn parse(raw: &str) -> Result<Self, MalformedId> {
        parse_uuid(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ProductId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Canonicalise `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits, any case);
/// also used for category ids.
pub fn parse_uuid(raw: &str) -> Result<String, MalformedId> {
    let bytes = raw.as_bytes();
    if bytes.len() != 36 {
        return Err(MalformedId);
    }
    for (i, b) in bytes.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        };
        if !ok {
            return Err(MalformedId);
        }
    }
    Ok(raw.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_and_normalises_case() {
        let id = ProductId::parse("A0000000-0000-4000-8000-0000000000AB").unwrap();
        assert_eq!(id.as_str(), "a0000000-0000-4000-8000-0000000000ab");
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "42",
            "a0000000-0000-4000-8000-00000000000",
            "a0000000-0000-4000-8000-0000000000001",
            "a0000000000040008000000000000001",
            "g0000000-0000-4000-8000-000000000001",
            "a0000000_0000-4000-8000-000000000001",
            "' OR 1=1 --",
            "a0000000-0000-4000-8000-00000000000é",
        ] {
            assert!(ProductId::parse(bad).is_err(), "{bad}");
        }
    }
}
