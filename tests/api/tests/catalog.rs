//! The public catalog read path, over HTTP only.

use api_tests::TestApp;
use serde_json::Value;

/// The demo catalog's categories (see migrations/seed/demo_catalog.sql).
const DEMO_CATEGORIES: &[&str] = &["books", "clothing", "electronics", "home-kitchen", "outdoors", "toys-games"];

fn skus(products: &[Value]) -> Vec<String> {
    products.iter().map(|p| p["sku"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_product_list_has_the_documented_shape_and_defaults() {
    let app = TestApp::get();
    let r = app.list_products("");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["page"], 1);
    assert_eq!(v["limit"], 20);
    assert!(v["total"].as_i64().unwrap() >= 50, "the demo catalog is loaded");
    let products = v["products"].as_array().unwrap();
    assert_eq!(products.len(), 20);
    let p = &products[0];
    for field in ["id", "sku", "name", "description", "price", "available", "in_stock", "category", "image_urls", "active", "created_at", "updated_at"] {
        assert!(p.get(field).is_some(), "product has `{field}`: {p}");
    }
    assert!(p["price"]["amount_minor"].is_i64(), "money is an integer in minor units: {p}");
    assert_eq!(p["price"]["currency"].as_str().unwrap().len(), 3);
    assert!(p["image_urls"].is_array());
    assert_eq!(p["active"], true);
}

#[test]
fn pages_do_not_overlap_and_total_is_stable() {
    let app = TestApp::get();
    let p1 = app.list_products("limit=5&page=1&sort=name").json();
    let p2 = app.list_products("limit=5&page=2&sort=name").json();
    assert_eq!(p1["total"], p2["total"]);
    let a = skus(p1["products"].as_array().unwrap());
    let b = skus(p2["products"].as_array().unwrap());
    assert_eq!((a.len(), b.len()), (5, 5));
    assert!(a.iter().all(|s| !b.contains(s)));
    let all = app.all_products("sort=name");
    assert_eq!(all.len() as i64, p1["total"].as_i64().unwrap());
    assert_eq!(skus(&all[0..10]), [a, b].concat());

    let beyond = app.list_products("limit=100&page=500").json();
    assert_eq!(beyond["products"].as_array().unwrap().len(), 0);
    assert_eq!(beyond["total"], p1["total"]);
}

#[test]
fn bad_paging_values_get_a_400_naming_the_parameter() {
    let app = TestApp::get();
    for (query, param) in [
        ("page=0", "page"),
        ("page=-3", "page"),
        ("page=two", "page"),
        ("page=1.5", "page"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("page=1&page=2", "page"),
    ] {
        let r = app.list_products(query);
        let v = r.assert_error(400, "invalid_parameter");
        assert_eq!(v["error"]["details"]["parameter"], param, "{query}: {}", r.body);
    }
}

#[test]
fn inactive_products_are_never_listed() {
    let app = TestApp::get();
    let all = app.all_products("");
    assert!(all.iter().all(|p| p["active"] == true));
    let listed: Vec<String> = skus(&all);
    for sku in INACTIVE_DEMO_SKUS {
        assert!(!listed.contains(&sku.to_string()), "{sku} is inactive");
    }
}

#[test]
fn category_filter() {
    let app = TestApp::get();
    let books = app.all_products("category=books");
    assert!(!books.is_empty());
    assert!(books.iter().all(|p| p["category"]["slug"] == "books"));
    let none = app.list_products("category=no-such-category").json();
    assert_eq!(none["total"], 0);
    app.list_products("category=Not%20A%20Slug").assert_error(400, "invalid_parameter");
}

#[test]
fn text_search_matches_name_and_description_and_ranks_names_first() {
    let app = TestApp::get();
    let hits = app.all_products("q=wireless");
    assert!(hits.len() >= 2, "demo data has several wireless products");
    let in_name: Vec<bool> = hits
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_lowercase().contains("wireless"))
        .collect();
    assert!(in_name.iter().any(|b| *b), "some names match");
    assert!(in_name.windows(2).all(|w| w[0] >= w[1]), "name matches rank first: {in_name:?}");
    for p in &hits {
        let text = format!("{} {}", p["name"], p["description"]).to_lowercase();
        assert!(text.contains("wireless"), "{p}");
    }
    let upper = app.all_products("q=WIRELESS");
    assert_eq!(skus(&upper), skus(&hits), "search ignores case");
}

/// Found in review: Postgres' parser kept `1.7` and `2.4` as one word each,
/// while a query is split into letters and digits, so these found the demo
/// products on SQLite and nothing on Postgres. The same on both stores now.
#[test]
fn numbers_with_a_dot_are_found_on_both_stores() {
    let app = TestApp::get();
    assert!(skus(&app.all_products("q=1.7%20litre")).contains(&"HOME-0006".to_string()));
    let ghz = skus(&app.all_products("q=2.4%20GHz"));
    assert!(ghz.contains(&"ELEC-0006".to_string()) && ghz.contains(&"TOYS-0004".to_string()), "{ghz:?}");
}

#[test]
fn sql_like_search_strings_are_just_text() {
    let app = TestApp::get();
    let before = app.list_products("").json()["total"].clone();
    // Counted, not assumed: against a long-lived app (scripts/test-long-lived.sh)
    // earlier tests may have added categories (the hostile-input test, as an
    // admin, sometimes makes a valid one).
    let categories = || app.get_path("/api/categories").json()["categories"].as_array().unwrap().len();
    let categories_before = categories();
    assert!(categories_before >= DEMO_CATEGORIES.len(), "the demo categories are there");
    for q in [
        "%27%20OR%201%3D1%20--",          // ' OR 1=1 --
        "%22%3B%20DROP%20TABLE%20products%3B%20--", // "; DROP TABLE products; --
        "robert%27)%3B%20DELETE%20FROM%20categories%3B--",
        "NEAR(a%20b)%20OR%20*",           // FTS syntax is text too
        "%22unbalanced",
    ] {
        let r = app.list_products(&format!("q={q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.body);
    }
    for q in ["%25", "_", "%5C", "%27--", "%22%3B"] {
        let r = app.list_products(&format!("q={q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        assert_eq!(r.json()["total"], 0, "{q} has no words, so it matches nothing");
    }
    assert_eq!(app.list_products("").json()["total"], before, "nothing was changed");
    assert_eq!(categories(), categories_before, "no category was changed");
    app.list_products(&format!("q={}", "x".repeat(101))).assert_error(400, "invalid_parameter");
}

#[test]
fn price_filters_and_sorting() {
    let app = TestApp::get();
    let cheap = app.all_products("min_price=1000&max_price=5000&sort=price_asc");
    assert!(!cheap.is_empty());
    let prices: Vec<i64> = cheap.iter().map(|p| p["price"]["amount_minor"].as_i64().unwrap()).collect();
    assert!(prices.iter().all(|p| (1000..=5000).contains(p)), "{prices:?}");
    // Without a currency, by currency code, then ascending within each: a
    // yen amount is not compared with a dollar one.
    let keyed: Vec<(String, i64)> = cheap.iter().map(|p| (p["price"]["currency"].as_str().unwrap().to_string(), p["price"]["amount_minor"].as_i64().unwrap())).collect();
    assert!(keyed.windows(2).all(|w| w[0] <= w[1]), "by currency, then ascending: {keyed:?}");

    let desc = app.all_products("sort=price_desc&currency=USD");
    let prices: Vec<i64> = desc.iter().map(|p| p["price"]["amount_minor"].as_i64().unwrap()).collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]), "descending: {prices:?}");
    assert!(desc.iter().all(|p| p["price"]["currency"] == "USD"));

    let by_name = app.all_products("sort=name");
    let names: Vec<String> = by_name.iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    let newest = app.all_products("sort=newest");
    let dates: Vec<String> = newest.iter().map(|p| p["created_at"].as_str().unwrap().to_string()).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first");

    assert_eq!(app.list_products("min_price=5000&max_price=1000").json()["total"], 0, "a range upside down matches nothing");
    app.list_products("min_price=-1").assert_error(400, "invalid_parameter");
    app.list_products("max_price=12.50").assert_error(400, "invalid_parameter");
    app.list_products("sort=cheapest").assert_error(400, "invalid_parameter");
    let relevance = app.list_products("sort=relevance&limit=100");
    assert_eq!(relevance.status, 200, "relevance without a search text is newest first");
    assert_eq!(relevance.json()["products"], app.list_products("sort=newest&limit=100").json()["products"]);
    assert_eq!(app.list_products("currency=XYZ").json()["total"], 0, "no product is priced in an unknown currency");
    app.list_products("currency=US").assert_error(400, "invalid_parameter");
}

#[test]
fn zero_decimal_currencies_keep_their_minor_units() {
    let app = TestApp::get();
    let yen = app.all_products("currency=JPY");
    assert!(!yen.is_empty());
    assert!(yen.iter().all(|p| p["price"]["currency"] == "JPY" && p["price"]["amount_minor"].is_i64()));
}

#[test]
fn in_stock_filter() {
    let app = TestApp::get();
    let available = app.all_products("in_stock=true");
    assert!(available.iter().all(|p| p["in_stock"] == true && p["available"].as_i64().unwrap() > 0));
    let sold_out = app.all_products("in_stock=false");
    assert!(!sold_out.is_empty(), "demo data has sold-out products");
    assert!(sold_out.iter().all(|p| p["in_stock"] == false && p["available"] == 0));
    let total = app.list_products("").json()["total"].as_i64().unwrap();
    assert_eq!((available.len() + sold_out.len()) as i64, total);
    app.list_products("in_stock=maybe").assert_error(400, "invalid_parameter");
}

#[test]
fn one_product_by_id() {
    let app = TestApp::get();
    let listed = app.list_products("limit=1").json()["products"][0].clone();
    let id = listed["id"].as_str().unwrap();
    let r = app.get_path(&format!("/api/products/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), listed);
    let upper = app.get_path(&format!("/api/products/{}", id.to_uppercase()));
    assert_eq!(upper.json()["id"], listed["id"], "ids are case-insensitive");

    app.get_path("/api/products/00000000-0000-4000-8000-000000000000").assert_error(404, "not_found");
    for bad in ["42", "not-a-uuid", "a0000000-0000-4000-8000-00000000000Z", "%27%20OR%201%3D1"] {
        app.get_path(&format!("/api/products/{bad}")).assert_error(400, "invalid_parameter");
    }
    app.get_path(&format!("/api/products/{INACTIVE_DEMO_ID}")).assert_error(404, "not_found");
}

#[test]
fn categories_with_counts() {
    let app = TestApp::get();
    let r = app.get_path("/api/categories");
    assert_eq!(r.status, 200, "{}", r.body);
    let cats = r.json()["categories"].as_array().unwrap().clone();
    let slugs: Vec<&str> = cats.iter().map(|c| c["slug"].as_str().unwrap()).collect();
    for slug in DEMO_CATEGORIES {
        assert!(slugs.contains(slug), "{slug} in {slugs:?}");
    }
    for c in &cats {
        let n = app.list_products(&format!("category={}&limit=1", c["slug"].as_str().unwrap())).json()["total"].clone();
        assert_eq!(c["product_count"], n, "count for {}", c["slug"]);
    }
}

#[test]
fn public_reads_support_conditional_get() {
    let app = TestApp::get();
    let r = app.list_products("category=books");
    let etag = r.header("etag").expect("etag").to_string();
    assert!(r.header("cache-control").unwrap().contains("max-age"));
    let again = app.request("GET", "/api/products?category=books", &[("if-none-match", &etag)], None);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other = app.request("GET", "/api/products?category=books", &[("if-none-match", "\"stale\"")], None);
    assert_eq!(other.status, 200);
}

#[test]
fn wrong_methods_and_unknown_routes() {
    let app = TestApp::get();
    let r = app.request("PATCH", "/api/products", &[], Some(&serde_json::json!({})));
    r.assert_error(405, "method_not_allowed");
    assert!(r.header("allow").unwrap().contains("GET"));
    app.request("POST", "/api/products", &[], Some(&serde_json::json!({}))).assert_error(401, "unauthorized");
    app.get_path("/api/products/a0000000-0000-4000-8000-000000000001/reviews").assert_error(404, "not_found");
    app.get_path("/api/no-such-service").assert_error(404, "not_found");
    let head = app.request("HEAD", "/api/products", &[], None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

/// Filled in from the demo data: products with active = 0.
const INACTIVE_DEMO_SKUS: &[&str] = &["BOOK-0010", "TOYS-0008"];
const INACTIVE_DEMO_ID: &str = "a0000000-0000-4000-8000-000000000020";
