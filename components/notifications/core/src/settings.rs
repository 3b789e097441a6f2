//! What is wrong with the notifications service's settings, for `/health`.

use http_kit::settings::Problems;

/// Each problem as a sentence; empty when every setting is usable.
pub fn configuration_problems(get: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut p = Problems::default();
    p.whole_number(get, "resend_timeout_ms", 100..=60_000, "milliseconds");
    p.http_url(get, "resend_api_base");
    p.one_of(get, "events_to_redis", &["true", "false"]);
    let from = get("email_from");
    if !from.is_empty() && !from.contains('@') {
        p.add(format!("email_from is {from:?}; it must hold an email address (`Shop <shop@example.com>`), or Resend refuses every email"));
    }
    let redis = get("redis_address");
    if get("events_to_redis") == "true" && !(redis.starts_with("redis://") || redis.starts_with("rediss://")) {
        // Not quoted: the value may hold a password (`user:pass@host`), and
        // the health answer is public (found in review).
        p.add("events_to_redis is true but redis_address has no redis:// or rediss:// scheme; it must be a redis:// or rediss:// address".to_string());
    }
    crate::twilio::configuration_problems(get, &mut p);
    p.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_email_settings_are_named() {
        let vars = [("resend_timeout_ms", "5"), ("events_to_redis", "true"), ("redis_address", "localhost:6379"), ("email_from", "Shop")];
        let get = |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()).unwrap_or_default();
        assert_eq!(configuration_problems(&get).len(), 3, "{:?}", configuration_problems(&get));
        assert!(configuration_problems(&|_| String::new()).is_empty());
    }
}
