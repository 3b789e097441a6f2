//! Query-string parameters and pagination.
//!
//! Parameters are decoded once (`application/x-www-form-urlencoded` rules).
//! A parameter given twice is a client error rather than a silent pick, so a
//! storefront bug like `?page=1&page=2` is caught instead of guessed at.

use crate::error::ApiError;

/// Decoded query parameters in their original order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// The longest query string decoded (bytes, before decoding).
pub const MAX_QUERY_BYTES: usize = 4096;
/// The most parameters one query may carry (no route reads more than a dozen).
pub const MAX_PARAMETERS: usize = 32;

impl Query {
    /// Decode a raw query string (without the leading `?`). Linear in its
    /// length, and bounded: longer than [`MAX_QUERY_BYTES`] or with more
    /// than [`MAX_PARAMETERS`] parameters is a 400 before anything else.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        if raw.len() > MAX_QUERY_BYTES {
            return Err(ApiError::new(400, "query_too_long", format!("the query string is longer than {MAX_QUERY_BYTES} bytes")));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            if k.is_empty() {
                continue;
            }
            if pairs.len() == MAX_PARAMETERS {
                return Err(ApiError::new(400, "too_many_parameters", format!("a query may carry at most {MAX_PARAMETERS} parameters")));
            }
            if !seen.insert(k.clone()) {
                return Err(ApiError::invalid_parameter(&k, "is given more than once"));
            }
            if k.contains('\0') || v.contains('\0') {
                // No parameter takes one, and Postgres refuses NUL in text.
                return Err(ApiError::invalid_parameter(&k, "contains a NUL character"));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// A 400 naming the first parameter sent with an empty (or blank) value:
    /// the API's routes take no empty values (leave the parameter out).
    pub fn refuse_empty(&self) -> Result<(), ApiError> {
        match self.pairs.iter().find(|(_, v)| v.trim().is_empty()) {
            Some((k, _)) => Err(ApiError::invalid_parameter(k, "is empty; leave it out instead")),
            None => Ok(()),
        }
    }

    /// The raw value of a parameter; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// A non-negative integer parameter within `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(None) };
        let n: i64 = raw
            .trim()
            .parse()
            .map_err(|_| ApiError::invalid_parameter(name, format!("must be a whole number from {min} to {max}")))?;
        if n < min || n > max {
            return Err(ApiError::invalid_parameter(name, format!("must be from {min} to {max}")));
        }
        Ok(Some(n))
    }

    /// A boolean parameter: `true`/`false` (also `1`/`0`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if v == "true" || v == "1" => Ok(Some(true)),
            Some(v) if v == "false" || v == "0" => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid_parameter(name, "must be true or false")),
        }
    }

    /// A parameter limited to one of a fixed set of words.
    pub fn one_of<'a>(&self, name: &str, allowed: &[&'a str]) -> Result<Option<&'a str>, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(None) };
        allowed
            .iter()
            .find(|a| **a == raw.trim())
            .copied()
            .map(Some)
            .ok_or_else(|| ApiError::invalid_parameter(name, format!("must be one of: {}", allowed.join(", "))))
    }

    /// A free-text parameter, trimmed, at most `max_chars` characters.
    pub fn text(&self, name: &str, max_chars: usize) -> Result<Option<String>, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(None) };
        text_input::bounded(raw, max_chars).map(Some).map_err(|e| ApiError::invalid_parameter(name, e))
    }
}

/// `page` and `limit`, validated: page from 1, limit from 1 to 100 (default 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    pub page: u32,
    pub limit: u32,
}

impl Pagination {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 100;
    /// Pages beyond this are refused: deep OFFSETs are a cheap way to load a
    /// database, and no storefront pages that far.
    pub const MAX_PAGE: u32 = 10_000;

    /// Read `page` and `limit` from the query.
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        let page = q.int("page", 1, Self::MAX_PAGE as i64)?.unwrap_or(1) as u32;
        let limit = q
            .int("limit", 1, Self::MAX_LIMIT as i64)?
            .unwrap_or(Self::DEFAULT_LIMIT as i64) as u32;
        Ok(Self { page, limit })
    }

    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        (self.page as i64 - 1) * self.limit as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_bounded() {
        let many: String = (0..MAX_PARAMETERS).map(|i| format!("k{i}=v&")).collect();
        assert!(Query::parse(&many).is_ok());
        let too_many = format!("{many}extra=1");
        assert_eq!(Query::parse(&too_many).unwrap_err().code, "too_many_parameters");
        let long = format!("q={}", "a".repeat(MAX_QUERY_BYTES));
        assert_eq!(Query::parse(&long).unwrap_err().code, "query_too_long");
        assert!(Query::parse("a=1&b=2&a=3").is_err(), "duplicates still refused");
    }

    fn q(raw: &str) -> Query {
        Query::parse(raw).unwrap()
    }

    #[test]
    fn decodes_percent_and_plus() {
        let q = q("q=red+wine%20glass&x=%C3%A9");
        assert_eq!(q.get("q"), Some("red wine glass"));
        assert_eq!(q.get("x"), Some("é"));
    }

    #[test]
    fn a_nul_is_refused() {
        assert_eq!(Query::parse("user_id=a%00b").unwrap_err().status, 400);
        assert_eq!(Query::parse("a%00=1").unwrap_err().status, 400);
    }

    #[test]
    fn duplicate_parameters_are_rejected() {
        let e = Query::parse("page=1&page=2").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("page"));
    }

    #[test]
    fn pagination_defaults_and_bounds() {
        assert_eq!(Pagination::from_query(&q("")).unwrap(), Pagination { page: 1, limit: 20 });
        assert_eq!(Pagination::from_query(&q("page=3&limit=100")).unwrap(), Pagination { page: 3, limit: 100 });
        assert_eq!(Pagination::from_query(&q("page=3&limit=10")).unwrap().offset(), 20);
        for bad in ["page=0", "page=-1", "page=abc", "limit=0", "limit=101", "limit=1.5", "page=99999999999999999999"] {
            let e = Pagination::from_query(&q(bad)).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
    }

    #[test]
    fn empty_values_count_as_absent_or_are_refused() {
        assert_eq!(Pagination::from_query(&q("page=&limit=")).unwrap().page, 1);
        assert_eq!(q("page=&limit=").refuse_empty().unwrap_err().status, 400);
        assert!(q("page=1&q=%20").refuse_empty().unwrap_err().message.contains("`q`"));
        assert!(q("page=1").refuse_empty().is_ok());
    }

    #[test]
    fn booleans_and_enums() {
        assert_eq!(q("a=true").bool("a").unwrap(), Some(true));
        assert_eq!(q("a=0").bool("a").unwrap(), Some(false));
        assert!(q("a=yes").bool("a").is_err());
        assert_eq!(q("s=name").one_of("s", &["name", "newest"]).unwrap(), Some("name"));
        assert!(q("s=drop").one_of("s", &["name"]).is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(q("q=%20lamp%20").text("q", 10).unwrap().as_deref(), Some("lamp"));
        assert!(q("q=aaaaaaaaaaa").text("q", 10).is_err());
        assert!(q("q=a%01b").text("q", 10).is_err(), "control characters");
    }
}
