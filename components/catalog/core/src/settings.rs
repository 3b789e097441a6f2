//! What is wrong with the catalog service's settings, for `/health`.

use http_kit::settings::Problems;

/// Each problem as a sentence; empty when every setting is usable.
pub fn configuration_problems(get: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut p = Problems::default();
    p.whole_number(get, "catalog_cache_ttl_ms", 0..=60_000, "milliseconds");
    p.one_of(get, "catalog_cache_get_many", &["true", "false"]);
    p.one_of(get, "demo_catalog", &["true", "false"]);
    let mut problems = p.0;
    if let Err(storage) = crate::images::StorageSettings::load(get) {
        problems.extend(storage);
    }
    problems
}
