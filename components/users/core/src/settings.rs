//! What is wrong with the users service's settings, for `/health`.

use crate::domain::Email;
use http_kit::settings::Problems;

/// Each problem as a sentence; empty when every setting is usable.
pub fn configuration_problems(get: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut p = Problems::default();
    p.whole_number(get, "login_failure_window_secs", 1..=30 * 86_400, "seconds");
    p.whole_number(get, "login_max_failures_per_email", 1..=1_000_000_000, "attempts");
    p.whole_number(get, "login_max_failures_per_email_and_client", 1..=1_000_000_000, "attempts");
    p.whole_number(get, "login_max_failures_per_client", 1..=1_000_000_000, "attempts");
    p.whole_number(get, "trusted_proxy_hops", 0..=16, "proxies");
    p.whole_number(get, "password_reset_ttl_secs", 1..=86_400, "seconds");
    p.whole_number(get, "password_reset_requests_per_client", 1..=1_000_000_000, "requests");
    p.whole_number(get, "registrations_per_client", 1..=1_000_000_000, "registrations");
    p.whole_number(get, "password_checks_per_client", 1..=1_000_000_000, "password checks");
    p.http_url(get, "storefront_url");
    // By position, not by text: `/health` is public, and the list names
    // the shop's admins.
    for (n, entry) in get("admin_emails").split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
        if Email::parse(entry).is_err() {
            p.add(format!("admin_emails entry {} is not an email address: nobody could become admin through it", n + 1));
        }
    }
    p.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_account_settings_are_named() {
        let vars = [("trusted_proxy_hops", "two"), ("password_reset_ttl_secs", "0"), ("storefront_url", "shop.example.com"), ("admin_emails", "a@b.co, not-an-email")];
        let get = |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()).unwrap_or_default();
        let problems = configuration_problems(&get);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[3].contains("admin_emails entry 2") && !problems[3].contains("not-an-email"), "{}", problems[3]);
        assert!(configuration_problems(&|_| String::new()).is_empty(), "the defaults are fine");
    }
}
