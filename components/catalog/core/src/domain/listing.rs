//! The rules of the public product listing: which filters exist, what values
//! they accept, and how results are ordered. Parsing happens here, once, so
//! the repository only ever sees valid filters.

use money::Currency;

/// Free-text search input: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

impl SearchText {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, String> {
        text_input::bounded(raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The FTS5 query for this text: every word must match, each as a prefix
    /// (`wire` finds "wireless"). Words are runs of letters and digits; each
    /// is quoted, so nothing the user types is FTS syntax. `None` when the
    /// text has no words at all (e.g. only punctuation): it matches nothing.
    pub fn fts_query(&self) -> Option<String> {
        let words: Vec<String> = self.raw_words().iter().map(|w| format!("\"{}\"*", w.to_lowercase())).collect();
        (!words.is_empty()).then(|| words.join(" "))
    }

    /// The same query restricted to product names, to rank name matches first.
    pub fn fts_name_query(&self) -> Option<String> {
        self.fts_query().map(|q| format!("name : ({q})"))
    }

    /// The words of the text: runs of letters and digits, at most 12, as
    /// typed (case kept).
    fn raw_words(&self) -> Vec<&str> {
        self.0.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(12).collect()
    }

    /// The Postgres `tsquery` (for `to_tsquery('simple', ...)`) equivalent
    /// to [`Self::fts_query`]: every word must match, each as a prefix
    /// (`'wire':*`). Words hold only letters and digits, and each is quoted,
    /// so nothing the user types is tsquery syntax.
    pub fn pg_tsquery(&self) -> Option<String> {
        self.pg_words("")
    }

    /// [`Self::pg_tsquery`] restricted to names (weight `A` in the document),
    /// the equivalent of [`Self::fts_name_query`].
    pub fn pg_name_tsquery(&self) -> Option<String> {
        self.pg_words("A")
    }

    /// Folded as typed, and lower-cased by `to_tsquery('simple', ...)`: the
    /// document folds, then `to_tsvector('simple', ...)` lower-cases, so the
    /// two go through the same steps in the same order (found in review:
    /// lower-casing here first turned `İ` into `i` and a combining dot that
    /// the fold table does not have, so `İstanbul` never matched).
    fn pg_words(&self, weight: &str) -> Option<String> {
        let words: Vec<String> = self.raw_words().iter().map(|w| format!("'{}':*{weight}", fold_latin(w))).collect();
        (!words.is_empty()).then(|| words.join(" & "))
    }

}

/// The accented Latin letters (Latin-1 and Latin Extended-A, both cases,
/// those with a canonical decomposition) that search folds to
/// [`FOLD_TO`], character for character. On Postgres the search document
/// folds with the same table (`translate` in the catalog migration 0002);
/// SQLite's FTS5 tokenizer folds diacritics itself.
pub const FOLD_FROM: &str = "àáâãäåāăąÀÁÂÃÄÅĀĂĄçćĉċčÇĆĈĊČďĎèéêëēĕėęěÈÉÊËĒĔĖĘĚĝğġģĜĞĠĢĥĤìíîïĩīĭįÌÍÎÏĨĪĬĮİĵĴķĶĺļľĹĻĽñńņňÑŃŅŇòóôõöōŏőÒÓÔÕÖŌŎŐŕŗřŔŖŘśŝşšŚŜŞŠţťŢŤùúûüũūŭůűųÙÚÛÜŨŪŬŮŰŲŵŴýÿŷÝŸŶźżžŹŻŽ";
/// The base letter of each character of [`FOLD_FROM`].
pub const FOLD_TO: &str = "aaaaaaaaaAAAAAAAAAcccccCCCCCdDeeeeeeeeeEEEEEEEEEggggGGGGhHiiiiiiiiIIIIIIIIIjJkKlllLLLnnnnNNNNooooooooOOOOOOOOrrrRRRssssSSSSttTTuuuuuuuuuuUUUUUUUUUUwWyyyYYYzzzZZZ";

/// The ASCII punctuation marks at which the Postgres search document is
/// split into words, as FTS5 and [`SearchText`] split at them (catalog
/// migration 6 on Postgres turns each into a space with `translate`).
pub const SPLIT_AT: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// `word` with each letter of [`FOLD_FROM`] replaced by its base letter.
pub fn fold_latin(word: &str) -> String {
    word.chars()
        .map(|c| FOLD_FROM.chars().position(|f| f == c).and_then(|i| FOLD_TO.chars().nth(i)).unwrap_or(c))
        .collect()
}

/// How the listing is ordered. Every order ends with the id so that pages
/// never overlap or skip a product when values tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Name matches first, then description matches (needs a search text).
    Relevance,
    PriceAsc,
    PriceDesc,
    Name,
    Newest,
}

impl Sort {
    /// The accepted `sort` parameter values.
    pub const NAMES: &'static [&'static str] = &["relevance", "price_asc", "price_desc", "name", "newest"];

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "relevance" => Self::Relevance,
            "price_asc" => Self::PriceAsc,
            "price_desc" => Self::PriceDesc,
            "name" => Self::Name,
            "newest" => Self::Newest,
            _ => return None,
        })
    }
}

/// An inclusive price range in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PriceRange {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl PriceRange {
    pub fn new(min: Option<i64>, max: Option<i64>) -> Result<Self, String> {
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                return Err(format!("min_price ({lo}) is greater than max_price ({hi})"));
            }
        }
        Ok(Self { min, max })
    }
}

/// A category slug: 1 to 64 of `a-z`, `0-9` and inner `-`.
pub fn parse_slug(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be a category slug: lower-case letters, digits and inner hyphens, at most 64".into())
    }
}

/// A validated listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFilter {
    pub category: Option<String>,
    pub search: Option<SearchText>,
    pub price: PriceRange,
    pub currency: Option<Currency>,
    pub in_stock: Option<bool>,
    pub sort: Sort,
    pub limit: u32,
    pub offset: i64,
}

impl ProductFilter {
    /// The default order: relevance when searching, newest otherwise.
    pub fn default_sort(search: Option<&SearchText>) -> Sort {
        if search.is_some() {
            Sort::Relevance
        } else {
            Sort::Newest
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_rules() {
        assert_eq!(SearchText::parse("  lamp ").unwrap().as_str(), "lamp");
        assert!(SearchText::parse("   ").is_err());
        assert!(SearchText::parse(&"x".repeat(101)).is_err());
        assert!(SearchText::parse("a\u{0}b").is_err());
        assert!(SearchText::parse("'; DROP TABLE products; --").is_ok());
    }

    #[test]
    fn fts_queries_quote_every_word() {
        let q = SearchText::parse("Wireless  \"mouse\" OR NEAR(x)").unwrap();
        assert_eq!(q.fts_query().unwrap(), "\"wireless\"* \"mouse\"* \"or\"* \"near\"* \"x\"*");
        assert_eq!(SearchText::parse("%_'--").unwrap().fts_query(), None);
        assert!(SearchText::parse("tee").unwrap().fts_name_query().unwrap().starts_with("name : ("));
        let q = SearchText::parse("Wireless MOUSE, or'x").unwrap();
        assert_eq!(q.pg_tsquery().unwrap(), "'Wireless':* & 'MOUSE':* & 'or':* & 'x':*", "Postgres lower-cases");
        assert_eq!(q.pg_name_tsquery().unwrap(), "'Wireless':*A & 'MOUSE':*A & 'or':*A & 'x':*A");
        assert_eq!(SearchText::parse("%_'--").unwrap().pg_tsquery(), None);
    }

    #[test]
    fn postgres_queries_fold_latin_diacritics_like_the_document() {
        assert_eq!(FOLD_FROM.chars().count(), FOLD_TO.chars().count());
        assert!(FOLD_TO.chars().all(|c| c.is_ascii_alphabetic()));
        let q = SearchText::parse("Café CRÈME Øl Straße").unwrap();
        assert_eq!(q.pg_tsquery().unwrap(), "'Cafe':* & 'CREME':* & 'Øl':* & 'Straße':*");
        assert_eq!(SearchText::parse("İstanbul").unwrap().pg_tsquery().unwrap(), "'Istanbul':*", "folded before Postgres lower-cases it");
        // The Postgres document folds with the same table, in the migration.
        let migration = include_str!("../../../../../migrations/postgres/catalog/0002_search_folds_diacritics.sql");
        let pair = format!("'{FOLD_FROM}',\n        '{FOLD_TO}')");
        assert_eq!(migration.matches(&pair).count(), 2, "both translate() calls use FOLD_FROM/FOLD_TO");
        // And so does the version that also splits at punctuation.
        let current = include_str!("../../../../../migrations/postgres/catalog/0006_search_splits_punctuation.sql");
        assert_eq!(current.matches(&pair).count(), 2);
    }

    #[test]
    fn the_postgres_document_splits_where_queries_split() {
        assert_eq!(SPLIT_AT.chars().count(), 32);
        assert!(SPLIT_AT.chars().all(|c| c.is_ascii_punctuation()) && (33u8..127).filter(|b| b.is_ascii_punctuation()).count() == 32);
        let migration = include_str!("../../../../../migrations/postgres/catalog/0006_search_splits_punctuation.sql");
        let pair = format!("'{}',\n        '{}')", SPLIT_AT.replace('\'', "''"), " ".repeat(32));
        assert_eq!(migration.matches(&pair).count(), 2, "both columns split at SPLIT_AT");
        let q = SearchText::parse("1.7 litre support@acme.com").unwrap();
        assert_eq!(q.pg_tsquery().unwrap(), "'1':* & '7':* & 'litre':* & 'support':* & 'acme':* & 'com':*");
    }

    #[test]
    fn price_range_must_be_ordered() {
        assert!(PriceRange::new(Some(10), Some(5)).is_err());
        assert!(PriceRange::new(Some(5), Some(5)).is_ok());
        assert!(PriceRange::new(None, Some(5)).is_ok());
    }

    #[test]
    fn slugs() {
        assert_eq!(parse_slug("home-kitchen").unwrap(), "home-kitchen");
        for bad in ["", "Home", "-x", "x-", "a b", "x/y", &"a".repeat(65)] {
            assert!(parse_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sort_names_round_trip() {
        for name in Sort::NAMES {
            assert!(Sort::from_name(name).is_some());
        }
        assert_eq!(Sort::from_name("price"), None);
    }
}
