//! Brute-force protection for login: failed attempts are counted per email
//! address and per client address in a fixed window. Past the limit, login
//! answers 429 with `Retry-After` — even with the right password — until the
//! window ends. A successful login clears its email's count.

use crate::repository;
use storage::{Db, DbError};

/// The limits, from Spin variables with safe defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    pub window_secs: i64,
    pub per_email: i64,
    pub per_client: i64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self { window_secs: 15 * 60, per_email: 5, per_client: 30 }
    }
}

impl LoginLimits {
    pub fn from_variables() -> Self {
        let d = Self::default();
        let num = |name: &str, default: i64| {
            spin_sdk::variables::get(name)
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        Self {
            window_secs: num("login_failure_window_secs", d.window_secs),
            per_email: num("login_max_failures_per_email", d.per_email),
            per_client: num("login_max_failures_per_client", d.per_client),
        }
    }
}

/// The counter keys for one attempt.
pub fn keys(email: &str, client_ip: &str) -> [(String, Limit); 2] {
    [(format!("email:{email}"), Limit::Email), (format!("client:{client_ip}"), Limit::Client)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Email,
    Client,
}

/// Seconds until the attempt may be retried, if a limit is reached.
pub fn blocked_for(db: &dyn Db, limits: &LoginLimits, email: &str, client_ip: &str, now: i64) -> Result<Option<i64>, DbError> {
    let mut wait = None;
    for (key, kind) in keys(email, client_ip) {
        let max = match kind {
            Limit::Email => limits.per_email,
            Limit::Client => limits.per_client,
        };
        if let Some((count, started)) = repository::failures(db, &key)? {
            let ends = started + limits.window_secs;
            if count >= max && ends > now {
                wait = Some(wait.unwrap_or(0).max(ends - now));
            }
        }
    }
    Ok(wait)
}

/// Count a failed attempt against both keys.
pub fn record_failure(db: &dyn Db, limits: &LoginLimits, email: &str, client_ip: &str, now: i64) -> Result<(), DbError> {
    for (key, _) in keys(email, client_ip) {
        repository::record_failure(db, &key, now, limits.window_secs)?;
    }
    Ok(())
}

/// The client's IP from Spin's `spin-client-addr` (`ip:port` or `[v6]:port`).
pub fn client_ip(addr: Option<&str>) -> String {
    let Some(addr) = addr.map(str::trim).filter(|a| !a.is_empty()) else {
        return "unknown".into();
    };
    let host = match addr.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    #[test]
    fn client_addresses() {
        assert_eq!(client_ip(Some("127.0.0.1:5000")), "127.0.0.1");
        assert_eq!(client_ip(Some("[::1]:5000")), "::1");
        assert_eq!(client_ip(Some("10.0.0.2")), "10.0.0.2");
        assert_eq!(client_ip(None), "unknown");
    }

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let limits = LoginLimits { window_secs: 100, per_email: 3, per_client: 10 };
        for t in 0..3 {
            assert_eq!(blocked_for(&db, &limits, "a@b.co", "1.2.3.4", 1000 + t).unwrap(), None);
            record_failure(&db, &limits, "a@b.co", "1.2.3.4", 1000 + t).unwrap();
        }
        assert_eq!(blocked_for(&db, &limits, "a@b.co", "1.2.3.4", 1010).unwrap(), Some(90));
        assert_eq!(blocked_for(&db, &limits, "other@b.co", "1.2.3.4", 1010).unwrap(), None, "other emails are fine");
        assert_eq!(blocked_for(&db, &limits, "a@b.co", "1.2.3.4", 1100).unwrap(), None, "window over");
    }

    #[test]
    fn the_client_limit_spans_emails() {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let limits = LoginLimits { window_secs: 100, per_email: 50, per_client: 4 };
        for i in 0..4 {
            record_failure(&db, &limits, &format!("u{i}@b.co"), "9.9.9.9", 1000).unwrap();
        }
        assert!(blocked_for(&db, &limits, "fresh@b.co", "9.9.9.9", 1001).unwrap().is_some());
        assert!(blocked_for(&db, &limits, "fresh@b.co", "8.8.8.8", 1001).unwrap().is_none());
    }
}
