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

/// Product writes an admin could send: mostly plausible (so that many are
/// stored), with hostile values mixed into every field.
fn product_input(required: bool) -> impl Strategy<Value = crate::admin::ProductInput> {
    use crate::admin::{PriceInput, ProductInput};
    let field = move |valid: BoxedStrategy<String>| {
        let value = prop_oneof![4 => valid, 1 => ".{0,30}", 1 => ".{190,210}", 1 => Just(String::new())];
        if required { value.prop_map(Some).boxed() } else { proptest::option::of(value).boxed() }
    };
    let sku = field("[A-Za-z0-9._-]{1,20}".boxed());
    let name = field("[ a-zA-Zé漢0-9\"*'%_()-]{1,40}".boxed());
    let description = field("[ a-zA-Z\n\t\"*-]{0,60}".boxed());
    let currency = prop_oneof![4 => Just("USD".to_string()), 1 => Just("jpy".to_string()), 1 => ".{0,4}"];
    let price = (prop_oneof![4 => 0i64..10_000, 1 => any::<i64>()], currency).prop_map(|(amount_minor, currency)| PriceInput { amount_minor, currency });
    let price = if required { price.prop_map(Some).boxed() } else { proptest::option::of(price).boxed() };
    let category = prop_oneof![4 => Just(None), 1 => Just(Some(None)), 1 => ".{0,40}".prop_map(|c| Some(Some(c)))];
    let url = prop_oneof![Just("https://img.example/a.png".to_string()), "https?://.{0,20}", ".{0,20}"];
    let urls = prop_oneof![3 => Just(None), 1 => proptest::collection::vec(url, 0..12).prop_map(Some)];
    let stock = proptest::option::of(prop_oneof![4 => 0i64..100, 1 => any::<i64>()]);
    (sku, name, description, price, category, urls, proptest::option::of(any::<bool>()), stock).prop_map(
        |(sku, name, description, price, category_id, image_urls, active, stock_on_hand)| ProductInput {
            sku,
            name,
            description,
            price,
            category_id,
            image_urls,
            active,
            stock_on_hand,
            expected_on_hand: None,
        },
    )
}

/// Whatever an admin sends, a product write is stored or refused with
/// named problems (a 4xx): never a storage error (a 500) or a panic. What
/// was stored is then found by searching its name.
#[test]
fn any_product_write_is_stored_or_refused() {
    use crate::admin::{create_product, update_product, AdminError};
    let db = MemDb::new();
    storage::migrations::migrate(&db, schema::MIGRATIONS).unwrap();
    let mut runner = TestRunner::new(Config::default());
    let n = std::cell::Cell::new(0u32);
    runner
        .run(&(product_input(true), product_input(false)), |(create, change)| {
            n.set(n.get() + 1);
            let id = ProductId::parse(&format!("00000000-0000-4000-8000-{:012x}", n.get())).unwrap();
            let refused = |r: &Result<crate::domain::Product, AdminError>| !matches!(r, Err(AdminError::Storage(_)));
            let created = create_product(&db, &id, &create, 0);
            prop_assert!(refused(&created), "{:?} → {:?}", create, created);
            let Ok(product) = created else { return Ok(()) };
            if let Ok(text) = SearchText::parse(&product.name) {
                prop_assert!(list_products(&db, &filter(text, Sort::Relevance), true, 0).is_ok());
            }
            let updated = update_product(&db, &id, &change, 1);
            prop_assert!(refused(&updated), "{:?} → {:?}", change, updated);
            Ok(())
        })
        .unwrap();
}
