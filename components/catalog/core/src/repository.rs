//! The catalog's SQL. Everything goes through the `storage::Db` trait, with
//! `?` placeholders and SQL that SQLite and Postgres both accept.

use crate::domain::{Category, CategoryRef, Product, ProductFilter, ProductId, Sort};
use money::{Currency, Money};
use storage::{Db, DbError, Row, Value};

/// Units still counted in `products.reserved` by reservations that lapsed
/// but that no stock write has swept yet (see `inventory::sweep_due`).
/// Its one parameter is "now" (Unix seconds). It reads only the partial
/// index of holding reservations past their expiry — usually none — so a
/// read costs the same whether 0 or 10,000 orders are pending, while a
/// lapsed hold still stops counting the moment it lapses.
///
/// Written as `IN (subquery)` rather than a join so SQLite's planner drives
/// the lookup from that index instead of scanning every reservation line.
const LAPSED_JOIN: &str = "LEFT JOIN (SELECT l.product_id, SUM(l.quantity) AS qty FROM reservation_lines l \
     WHERE l.order_id IN (SELECT order_id FROM reservations WHERE holding = 1 AND expires_at <= ?) \
     GROUP BY l.product_id) lapsed ON lapsed.product_id = p.id";

/// Stock a customer can buy now: on hand minus live reservations.
const AVAILABLE: &str = "(p.stock_on_hand - p.reserved + COALESCE(lapsed.qty, 0))";

const PRODUCT_COLUMNS: &str = "p.id, p.sku, p.name, p.description, p.price_minor, p.currency, \
     p.stock_on_hand, p.reserved - COALESCE(lapsed.qty, 0) AS reserved, p.image_urls, p.images, p.active, p.created_at, p.updated_at, \
     c.id AS category_id, c.slug AS category_slug, c.name AS category_name";

const CATEGORY_JOIN: &str = "LEFT JOIN categories c ON c.id = p.category_id";

/// Postgres search: the matches of `to_tsquery('simple', ?)` against the
/// generated `products.search` document (GIN index) with their rank, names
/// (weight A) counting ten times descriptions (weight B), as BM25 does on
/// SQLite. The rank is negated so that, like BM25, lower sorts first.
const PG_SEARCH_FROM: &str = "FROM (SELECT s.id AS fts_id, \
     -ts_rank('{0.1, 0.2, 0.1, 1.0}', s.search, q.q) AS fts_rank \
     FROM products s CROSS JOIN to_tsquery('simple', ?) AS q(q) WHERE s.search @@ q.q) m \
     JOIN products p ON p.id = m.fts_id";

/// Postgres relevance order: name matches first (its one parameter is the
/// name-only tsquery), then rank, then id.
const PG_SEARCH_ORDER: &str = "CASE WHEN p.search @@ to_tsquery('simple', ?) THEN 0 ELSE 1 END, m.fts_rank, p.id";

/// One page of the listing and the total number of matches.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductPage {
    pub products: Vec<Product>,
    pub total: i64,
}

/// The product listing: active products only (unless `include_inactive`, for
/// admins), filtered, ordered, paged. Text search uses the FTS5 index.
///
/// One statement gives the page and the total (`COUNT(*) OVER ()`); only a
/// page past the end needs a second one to learn the total.
pub fn list_products(db: &dyn Db, f: &ProductFilter, include_inactive: bool, now: i64) -> Result<ProductPage, DbError> {
    let postgres = db.dialect() == storage::Dialect::Postgres;
    let fts = match &f.search {
        Some(s) if postgres => match (s.pg_tsquery(), s.pg_name_tsquery()) {
            (Some(q), Some(nq)) => Some((q, nq)),
            _ => return Ok(ProductPage { products: Vec::new(), total: 0 }),
        },
        Some(s) => match (s.fts_query(), s.fts_name_query()) {
            (Some(q), Some(nq)) => Some((q, nq)),
            // Only punctuation: no word can match.
            _ => return Ok(ProductPage { products: Vec::new(), total: 0 }),
        },
        None => None,
    };
    // Parameters follow the order of the `?` in the SQL text.
    let mut params: Vec<Value> = Vec::new();
    let from = match &fts {
        // The matches and their BM25 score (names weighted 10x) come from a
        // subquery: FTS5's ranking function cannot run in a query that also
        // counts with a window function.
        Some((q, _)) if postgres => {
            params.push(q.into());
            format!("{PG_SEARCH_FROM} {CATEGORY_JOIN} {LAPSED_JOIN}")
        }
        Some((q, _)) => {
            params.push(q.into());
            format!(
                "FROM (SELECT rowid AS fts_rowid, bm25(products_fts, 10.0, 1.0) AS fts_rank FROM products_fts \
                 WHERE products_fts MATCH ?) m JOIN products p ON p.rowid = m.fts_rowid {CATEGORY_JOIN} {LAPSED_JOIN}"
            )
        }
        None => format!("FROM products p {CATEGORY_JOIN} {LAPSED_JOIN}"),
    };
    params.push(now.into());
    let mut clauses: Vec<String> = Vec::new();
    if !include_inactive {
        clauses.push("p.active = 1".into());
    }
    if let Some(slug) = &f.category {
        clauses.push("c.slug = ?".into());
        params.push(slug.into());
    }
    if let Some(min) = f.price.min {
        clauses.push("p.price_minor >= ?".into());
        params.push(min.into());
    }
    if let Some(max) = f.price.max {
        clauses.push("p.price_minor <= ?".into());
        params.push(max.into());
    }
    if let Some(cur) = f.currency {
        clauses.push("p.currency = ?".into());
        params.push(cur.code().into());
    }
    match f.in_stock {
        Some(true) => clauses.push(format!("{AVAILABLE} > 0")),
        Some(false) => clauses.push(format!("{AVAILABLE} <= 0")),
        None => {}
    }
    let where_sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };

    let count_params = params.clone();
    let order = match (f.sort, &fts) {
        (Sort::Relevance, Some((_, name_query))) if postgres => {
            params.push(name_query.into());
            PG_SEARCH_ORDER
        }
        (Sort::Relevance, Some((_, name_query))) => {
            params.push(name_query.into());
            // Name matches first; within each group, BM25 with names weighted 10x.
            "CASE WHEN p.rowid IN (SELECT rowid FROM products_fts WHERE products_fts MATCH ?) THEN 0 ELSE 1 END, \
             m.fts_rank, p.id"
        }
        (Sort::Relevance, None) | (Sort::Newest, _) => "p.created_at DESC, p.id DESC",
        // Prices in one currency are compared with each other, not with
        // another currency's minor units (found in review: ¥12,000 sorted
        // above $100.00): by currency code first.
        (Sort::PriceAsc, _) => "p.currency, p.price_minor ASC, p.id",
        (Sort::PriceDesc, _) => "p.currency, p.price_minor DESC, p.id",
        // Byte order on both stores: SQLite's default, and "C" on Postgres,
        // whose database collation may fold case and accents (found in
        // review: the order changed with the backend and its locale).
        (Sort::Name, _) if postgres => "p.name COLLATE \"C\", p.id",
        (Sort::Name, _) => "p.name, p.id",
    };
    params.push((f.limit as i64).into());
    params.push(f.offset.into());
    let rows = db.query(
        &format!("SELECT {PRODUCT_COLUMNS}, COUNT(*) OVER () AS total_count {from} {where_sql} ORDER BY {order} LIMIT ? OFFSET ?"),
        &params,
    )?;
    let total = match rows.first() {
        Some(r) => r.int("total_count")?,
        None if f.offset == 0 => 0,
        None => db
            .query(&format!("SELECT COUNT(*) AS n {from} {where_sql}"), &count_params)?
            .first()
            .map(|r| r.int("n"))
            .transpose()?
            .unwrap_or(0),
    };
    let products = rows.iter().map(|r| product_from_row(&r)).collect::<Result<_, _>>()?;
    Ok(ProductPage { products, total })
}

/// One product by id; inactive ones only when `include_inactive` (admins).
pub fn get_product(db: &dyn Db, id: &ProductId, include_inactive: bool, now: i64) -> Result<Option<Product>, DbError> {
    let active = if include_inactive { "" } else { " AND p.active = 1" };
    let rows = db.query(
        &format!("SELECT {PRODUCT_COLUMNS} FROM products p {CATEGORY_JOIN} {LAPSED_JOIN} WHERE p.id = ?{active}"),
        &[now.into(), id.as_str().into()],
    )?;
    rows.first().map(|r| product_from_row(&r)).transpose()
}

/// Products by id, active or not (other services must be able to see that a
/// product went inactive). Unknown ids are simply absent from the result.
pub fn get_products_by_ids(db: &dyn Db, ids: &[ProductId], now: i64) -> Result<Vec<Product>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let mut params: Vec<Value> = vec![now.into()];
    params.extend(ids.iter().map(|id| Value::from(id.as_str())));
    let rows = db.query(
        &format!("SELECT {PRODUCT_COLUMNS} FROM products p {CATEGORY_JOIN} {LAPSED_JOIN} WHERE p.id IN ({marks}) ORDER BY p.id"),
        &params,
    )?;
    rows.iter().map(|r| product_from_row(&r)).collect()
}

/// All categories with their count of active products, by name.
pub fn list_categories(db: &dyn Db) -> Result<Vec<Category>, DbError> {
    // Byte order on both stores (see the listing's `sort=name`).
    let name = if db.dialect() == storage::Dialect::Postgres { "c.name COLLATE \"C\"" } else { "c.name" };
    let rows = db.query(
        &format!(
            "SELECT c.id, c.slug, c.name, c.description, \
             (SELECT COUNT(*) FROM products p WHERE p.category_id = c.id AND p.active = 1) AS product_count \
             FROM categories c ORDER BY {name}, c.id"
        ),
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Category {
                id: r.text("id")?,
                slug: r.text("slug")?,
                name: r.text("name")?,
                description: r.text("description")?,
                product_count: r.int("product_count")?,
            })
        })
        .collect()
}

fn product_from_row(r: &Row<'_>) -> Result<Product, DbError> {
    let id = ProductId::parse(&r.text("id")?).map_err(|_| DbError::Other("stored product id is not a UUID".into()))?;
    let currency = Currency::parse(&r.text("currency")?).map_err(|e| DbError::Other(e.to_string()))?;
    let image_urls: Vec<String> = serde_json::from_str(&r.text("image_urls")?)
        .map_err(|e| DbError::Other(format!("product {id}: image_urls is not a JSON list: {e}")))?;
    let category = match r.opt_text("category_id")? {
        Some(cid) => Some(CategoryRef { id: cid, slug: r.text("category_slug")?, name: r.text("category_name")? }),
        None => None,
    };
    let on_hand = r.int("stock_on_hand")?;
    let reserved = r.int("reserved")?;
    let available = (on_hand - reserved).max(0);
    Ok(Product {
        id,
        sku: r.text("sku")?,
        name: r.text("name")?,
        description: r.text("description")?,
        price: Money::new(r.int("price_minor")?, currency),
        available,
        in_stock: available > 0,
        category,
        image_urls,
        images: crate::images::parse_stored(&r.text("images")?)?,
        active: r.bool("active")?,
        created_at: r.text("created_at")?,
        updated_at: r.text("updated_at")?,
        on_hand,
        reserved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PriceRange, SearchText};
    use crate::schema;
    use storage::native::MemDb;

    fn demo_db() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, schema::MIGRATIONS).unwrap();
        storage::migrations::apply_data_once(&db, "demo_catalog", schema::DEMO_CATALOG).unwrap();
        db
    }

    fn filter() -> ProductFilter {
        ProductFilter {
            category: None,
            search: None,
            price: PriceRange::default(),
            currency: None,
            in_stock: None,
            sort: Sort::Newest,
            limit: 100,
            offset: 0,
        }
    }

    #[test]
    fn postgres_search_uses_the_tsvector_and_keeps_the_order_promise() {
        let db = storage::native::Recorder::postgres();
        let f = ProductFilter { search: Some(SearchText::parse("Wire mouse").unwrap()), sort: Sort::Relevance, ..filter() };
        list_products(&db, &f, false, 0).unwrap();
        let log = db.log.borrow();
        let (sql, params) = &log[0];
        assert!(!sql.contains("products_fts") && !sql.contains("rowid") && !sql.contains("bm25"), "{sql}");
        assert!(sql.contains("to_tsquery('simple', ?) AS q(q) WHERE s.search @@ q.q"), "{sql}");
        assert!(sql.contains("ORDER BY CASE WHEN p.search @@ to_tsquery('simple', ?) THEN 0 ELSE 1 END, m.fts_rank, p.id"), "{sql}");
        // As typed: `to_tsquery('simple', ...)` lower-cases, as the document's `to_tsvector` does.
        assert_eq!(params[0], Value::Text("'Wire':* & 'mouse':*".into()));
        assert!(params.contains(&Value::Text("'Wire':*A & 'mouse':*A".into())), "{params:?}");
        // Placeholders and parameters line up once numbered for Postgres.
        let numbered = storage::number_placeholders(sql);
        assert!(numbered.contains(&format!("${}", params.len())) && !numbered.contains(&format!("${}", params.len() + 1)), "{numbered}");
    }

    #[test]
    fn sqlite_search_sql_is_unchanged() {
        let db = demo_db();
        let f = ProductFilter { search: Some(SearchText::parse("wire").unwrap()), sort: Sort::Relevance, ..filter() };
        let page = list_products(&db, &f, false, 0).unwrap();
        assert!(page.total > 0);
    }

    #[test]
    fn lists_only_active_products_with_a_correct_total() {
        let db = demo_db();
        let page = list_products(&db, &filter(), false, 0).unwrap();
        let inactive: i64 = db.query("SELECT COUNT(*) AS n FROM products WHERE active = 0", &[]).unwrap().first().unwrap().int("n").unwrap();
        let all: i64 = db.query("SELECT COUNT(*) AS n FROM products", &[]).unwrap().first().unwrap().int("n").unwrap();
        assert!(inactive > 0);
        assert_eq!(page.total, all - inactive);
        assert!(page.products.iter().all(|p| p.active));
        let dates: Vec<&str> = page.products.iter().map(|p| p.created_at.as_str()).collect();
        let mut sorted = dates.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(dates, sorted, "newest first");
    }

    #[test]
    fn pages_partition_the_listing() {
        let db = demo_db();
        let all = list_products(&db, &ProductFilter { sort: Sort::PriceAsc, ..filter() }, false, 0).unwrap();
        let mut seen = Vec::new();
        for page in 0..10 {
            let p = list_products(&db, &ProductFilter { sort: Sort::PriceAsc, limit: 7, offset: page * 7, ..filter() }, false, 0).unwrap();
            assert_eq!(p.total, all.total);
            seen.extend(p.products.into_iter().map(|p| p.id));
        }
        let expected: Vec<_> = all.products.into_iter().map(|p| p.id).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn filters_combine() {
        let db = demo_db();
        let f = ProductFilter {
            category: Some("electronics".into()),
            price: PriceRange::new(Some(1000), Some(20000)).unwrap(),
            in_stock: Some(true),
            sort: Sort::PriceDesc,
            ..filter()
        };
        let page = list_products(&db, &f, false, 0).unwrap();
        assert!(page.total > 0);
        assert_eq!(page.total as usize, page.products.len());
        for p in &page.products {
            assert_eq!(p.category.as_ref().unwrap().slug, "electronics");
            assert!((1000..=20000).contains(&p.price.amount_minor));
            assert!(p.in_stock && p.available > 0);
        }
        // By currency, then descending within each.
        let keyed: Vec<(String, i64)> = page.products.iter().map(|p| (p.price.currency.code().to_string(), p.price.amount_minor)).collect();
        assert!(keyed.windows(2).all(|w| w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 >= w[1].1)), "{keyed:?}");
    }

    #[test]
    fn search_ranks_name_matches_first_and_treats_input_as_text() {
        let db = demo_db();
        let f = ProductFilter { search: Some(SearchText::parse("wireless").unwrap()), sort: Sort::Relevance, ..filter() };
        let page = list_products(&db, &f, false, 0).unwrap();
        assert!(page.total > 0);
        let name_hits: Vec<bool> = page.products.iter().map(|p| p.name.to_lowercase().contains("wireless")).collect();
        assert!(name_hits.windows(2).all(|w| w[0] >= w[1]), "name matches come first: {name_hits:?}");
        for hostile in ["%", "_", "'--", "\"; --"] {
            let f = ProductFilter { search: Some(SearchText::parse(hostile).unwrap()), ..filter() };
            assert_eq!(list_products(&db, &f, false, 0).unwrap().total, 0, "{hostile}");
        }
        assert!(list_products(&db, &filter(), false, 0).unwrap().total > 0, "table intact");
    }

    #[test]
    fn lookups_by_id() {
        let db = demo_db();
        let first = list_products(&db, &filter(), false, 0).unwrap().products.remove(0);
        assert_eq!(get_product(&db, &first.id, false, 0).unwrap().unwrap(), first);
        let unknown = ProductId::parse("00000000-0000-4000-8000-000000000000").unwrap();
        assert_eq!(get_product(&db, &unknown, true, 0).unwrap(), None);
        let both = get_products_by_ids(&db, &[first.id.clone(), unknown], 0).unwrap();
        assert_eq!(both.len(), 1);
    }

    #[test]
    fn categories_count_active_products() {
        let db = demo_db();
        let cats = list_categories(&db).unwrap();
        assert!(cats.len() >= 5);
        let total: i64 = cats.iter().map(|c| c.product_count).sum();
        assert_eq!(total, list_products(&db, &filter(), false, 0).unwrap().total);
    }
}
