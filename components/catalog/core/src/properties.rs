//! Property tests of what the catalog reads from requests: search text
//! (down to SQLite's FTS5, where a query that is not valid FTS syntax would
//! be an error and a 500), ids, SKUs, slugs and order ids.

use crate::admin::{parse_sku, MAX_SKU_CHARS};
use crate::domain::ids::parse_uuid;
use crate::domain::listing::parse_slug;
use crate::domain::{PriceRange, ProductFilter, ProductId, SearchText, Sort};
use crate::inventory::parse_order_id;
use crate::repository::list_products;
use crate::schema;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use storage::native::MemDb;


/// What people type in a search box, and what attackers type: FTS5 and
/// tsquery syntax, quotes, stars, operators, combining marks, superscript
/// digits, letters whose lower case is longer, any Unicode.
fn search_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{1,40}",
        "[a-zA-Z0-9 \"*:^()+\\-'&|!<>.,;İıßẞ²³½ǅ\u{301}\u{307}\u{200b}\u{fe0f}🙂]{1,30}",
        proptest::collection::vec(prop_oneof![Just("AND"), Just("OR"), Just("NOT"), Just("NEAR("), Just(")"), Just("\"x\""), Just("*"), Just("^"), Just("name:"), Just("wire"), Just("²")], 1..8)
            .prop_map(|w| w.join(" ")),
    ]
}

fn filter(search: SearchText, sort: Sort) -> ProductFilter {
    ProductFilter { category: None, search: Some(search), price: PriceRange::default(), currency: None, in_stock: None, sort, limit: 20, offset: 0 }
}

#[test]
fn any_search_text_lists_products_or_is_refused() {
    let db = MemDb::new();
    storage::migrations::migrate(&db, schema::MIGRATIONS).unwrap();
    storage::migrations::apply_data_once(&db, "demo_catalog", schema::DEMO_CATALOG).unwrap();
    let mut runner = TestRunner::new(Config::default());
    runner
        .run(&(search_text(), proptest::sample::select(vec![Sort::Relevance, Sort::Name, Sort::PriceAsc])), |(raw, sort)| {
            let Ok(text) = SearchText::parse(&raw) else { return Ok(()) };
            // Every word is quoted, so nothing typed is FTS5 or tsquery syntax.
            for q in [text.fts_query(), text.pg_tsquery()].into_iter().flatten() {
                prop_assert!(!q.is_empty());
            }
            let listed = list_products(&db, &filter(text, sort), false, 0);
            prop_assert!(listed.is_ok(), "{:?}: {:?}", raw, listed.err());
            Ok(())
        })
        .unwrap();
}

proptest! {
    #[test]
    fn ids_are_canonical_or_refused(raw in prop_oneof![".{0,40}", "[0-9a-fA-F-]{36}", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"]) {
        if let Ok(id) = parse_uuid(&raw) {
            prop_assert_eq!(id.len(), 36);
            prop_assert_eq!(&id, &raw.to_ascii_lowercase());
            prop_assert_eq!(parse_uuid(&id), Ok(id.clone()));
            let product = ProductId::parse(&raw).unwrap();
            prop_assert_eq!(product.as_str(), id.as_str());
        }
    }

    #[test]
    fn skus_slugs_and_order_ids_are_canonical_or_refused(raw in prop_oneof![".{0,70}", "[ a-zA-Z0-9._:\\-]{0,70}", "[a-z0-9-]{1,70}"]) {
        if let Ok(sku) = parse_sku(&raw) {
            prop_assert!(!sku.is_empty() && sku.len() <= MAX_SKU_CHARS);
            prop_assert!(sku.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_.".contains(&b)));
            prop_assert_eq!(parse_sku(&sku.to_ascii_lowercase()), Ok(sku.clone()));
        }
        if let Ok(slug) = parse_slug(&raw) {
            prop_assert!(!slug.is_empty() && slug.len() <= 64 && !slug.starts_with('-') && !slug.ends_with('-'));
            prop_assert_eq!(parse_slug(&slug), Ok(slug.clone()));
        }
        if let Ok(id) = parse_order_id(&raw) {
            prop_assert!(!id.is_empty() && id.len() <= 128 && id == raw);
        }
    }

    #[test]
    fn price_ranges_are_ordered_or_refused(min in proptest::option::of(any::<i64>()), max in proptest::option::of(any::<i64>())) {
        match PriceRange::new(min, max) {
            Ok(r) => prop_assert!(r.min.zip(r.max).is_none_or(|(lo, hi)| lo <= hi)),
            Err(_) => prop_assert!(min > max && max.is_some()),
        }
    }
}
