//! Brute-force protection for password checks (login, password change,
//! account deletion): failed attempts are counted per email address from
//! one client address, per email address from anywhere (a higher limit),
//! and per client address, in a fixed window. Past a limit, the check
//! answers 429 with `Retry-After` — even with the right password — until
//! the window ends. The owner signing in from another address is held up
//! only by the email's limit from anywhere (found in review: five wrong
//! guesses from anyone locked the owner out everywhere).
//!
//! The count is **reserved before the password is checked**: each attempt
//! first takes a slot on both keys in one statement each
//! ([`repository::take_slot`]), so any number of concurrent guesses can
//! never run more password checks than the limit. A right password gives
//! the client slot back and clears the email's count; a wrong one keeps
//! both.
//!
//! Every check, right or wrong, also takes one of the client's hourly
//! password checks (`password_checks_per_client`, 1,000 by default), never
//! given back once the check ran: each is an Argon2id hash (19 MiB, tens
//! of milliseconds) and a right one makes a session, so an account anyone
//! can register could otherwise sign in without end and keep the server
//! hashing (found in review).

use crate::repository::{self, Counter};
use storage::{Db, DbError};

/// The limits, from Spin variables with safe defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    pub window_secs: i64,
    /// Failures per email from one client address.
    pub per_email_and_client: i64,
    /// Failures per email from any client address.
    pub per_email: i64,
    pub per_client: i64,
    /// Password checks, right or wrong, per client address per hour.
    pub checks_per_client_hourly: i64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self { window_secs: 15 * 60, per_email_and_client: 5, per_email: 50, per_client: 30, checks_per_client_hourly: 1000 }
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
            per_email_and_client: num("login_max_failures_per_email_and_client", d.per_email_and_client),
            per_email: num("login_max_failures_per_email", d.per_email),
            per_client: num("login_max_failures_per_client", d.per_client),
            checks_per_client_hourly: num("password_checks_per_client", d.checks_per_client_hourly),
        }
    }
}


const HOUR: i64 = 3600;

/// A password check that may go ahead: its slots are taken.
#[derive(Debug)]
#[must_use = "settle the attempt with `succeeded` or `failed`"]
pub struct Attempt {
    email_key: String,
    pair_key: String,
    client_key: String,
}

/// The counter of failures for `email` from `client_ip`: in a namespace of
/// its own, the client's address last, so no text sent as an email (one
/// that does not parse is counted as typed) can name another address's
/// counter (found in review: `victim@x|client:<ip>` was that client's key
/// for the victim). An erasure finds it by its prefix
/// ([`repository::clear_email_counters`]).
pub(crate) fn pair_key(email: &str, client_ip: &str) -> String {
    format!("pair:{email}|{client_ip}")
}

/// Reserve one attempt for this email from this client. `Ok(Err(seconds))`
/// when a limit is reached: no password may be checked, retry after that.
pub fn reserve(db: &dyn Db, limits: &LoginLimits, email: &str, client_ip: &str, now: i64) -> Result<Result<Attempt, i64>, DbError> {
    let (client_key, email_key) = (format!("client:{client_ip}"), format!("email:{email}"));
    let checks_key = format!("checks:client:{client_ip}");
    if let Some(wait) = repository::take_slot(db, Counter::Requests, &checks_key, now, HOUR, limits.checks_per_client_hourly)? {
        return Ok(Err(wait));
    }
    if let Some(wait) = repository::take_slot(db, Counter::LoginFailures, &client_key, now, limits.window_secs, limits.per_client)? {
        repository::give_back_slot(db, Counter::Requests, &checks_key)?;
        return Ok(Err(wait));
    }
    let pair_key = pair_key(email, client_ip);
    if let Some(wait) = repository::take_slot(db, Counter::LoginFailures, &pair_key, now, limits.window_secs, limits.per_email_and_client)? {
        // This attempt never ran: it must not count against the client.
        repository::give_back_slot(db, Counter::LoginFailures, &client_key)?;
        repository::give_back_slot(db, Counter::Requests, &checks_key)?;
        return Ok(Err(wait));
    }
    if let Some(wait) = repository::take_slot(db, Counter::LoginFailures, &email_key, now, limits.window_secs, limits.per_email)? {
        repository::give_back_slot(db, Counter::LoginFailures, &pair_key)?;
        repository::give_back_slot(db, Counter::LoginFailures, &client_key)?;
        repository::give_back_slot(db, Counter::Requests, &checks_key)?;
        return Ok(Err(wait));
    }
    Ok(Ok(Attempt { email_key, pair_key, client_key }))
}

impl Attempt {
    /// The password was right: the client's slot is given back and the
    /// email's failures are forgotten.
    pub fn succeeded(self, db: &dyn Db) -> Result<(), DbError> {
        repository::give_back_slot(db, Counter::LoginFailures, &self.client_key)?;
        repository::clear(db, Counter::LoginFailures, &self.pair_key)?;
        repository::clear(db, Counter::LoginFailures, &self.email_key)
    }

    /// The password was wrong: the reservation stays, as the failure.
    pub fn failed(self) {}
}

/// The client's IP from Spin's `spin-client-addr` (`ip:port` or `[v6]:port`),
/// as per-client limits count it ([`client_bucket`]).
pub fn client_ip(addr: Option<&str>) -> String {
    let Some(addr) = addr.map(str::trim).filter(|a| !a.is_empty()) else {
        return "unknown".into();
    };
    let host = match addr.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<std::net::IpAddr>().map_or_else(|_| host.to_string(), client_bucket)
}

/// What a per-client limit counts for an address: an IPv4 address itself
/// (also when written IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address by
/// its /64 network. One subscriber is given a whole /64, so counting each
/// IPv6 address apart let one client try a new address per attempt and
/// never reach a per-client limit (found in review).
pub fn client_bucket(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The address per-client limits count against.
///
/// With `trusted_proxy_hops = 0` (the default) it is Spin's
/// `spin-client-addr`, the peer of the connection. Behind `n` proxies that
/// each append the address they received from to `X-Forwarded-For` (an
/// ingress, a CDN in front of it), the client is the `n`-th entry from the
/// right: entries further left were written by the client itself and prove
/// nothing. A request without the header (one that did not come through the
/// proxies) falls back to the peer address.
pub fn client_address(spin_client_addr: Option<&str>, forwarded_for: Option<&str>, trusted_proxy_hops: usize) -> String {
    if trusted_proxy_hops == 0 {
        return client_ip(spin_client_addr);
    }
    let entries: Vec<&str> = forwarded_for.unwrap_or("").split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    let Some(entry) = entries.get(entries.len().saturating_sub(trusted_proxy_hops)).or(entries.first()) else {
        return client_ip(spin_client_addr);
    };
    if let Ok(ip) = entry.parse::<std::net::IpAddr>() {
        return client_bucket(ip);
    }
    if let Ok(sock) = entry.parse::<std::net::SocketAddr>() {
        return client_bucket(sock.ip());
    }
    // Not an address (a proxy's obfuscated name, say): still a stable key.
    entry.chars().take(64).collect()
}

/// `trusted_proxy_hops` from the component's variables (0 when unset or not a number).
pub fn trusted_proxy_hops_from_variables() -> usize {
    spin_sdk::variables::get("trusted_proxy_hops").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0).min(16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    #[test]
    fn client_addresses() {
        assert_eq!(client_ip(Some("127.0.0.1:5000")), "127.0.0.1");
        assert_eq!(client_ip(Some("[::1]:5000")), "::/64");
        assert_eq!(client_ip(Some("[2001:db8:1:2:aaaa::1]:5000")), client_ip(Some("[2001:db8:1:2:bbbb::9]:5000")), "one /64 is one client");
        assert_ne!(client_ip(Some("[2001:db8:1:2::1]:5000")), client_ip(Some("[2001:db8:1:3::1]:5000")));
        assert_eq!(client_ip(Some("[::ffff:1.2.3.4]:5000")), "1.2.3.4", "IPv4-mapped is the IPv4 address");
        assert_eq!(client_ip(Some("10.0.0.2")), "10.0.0.2");
        assert_eq!(client_ip(None), "unknown");
    }

    fn db() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        db
    }

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let db = db();
        let limits = LoginLimits { window_secs: 100, per_email: 3, per_client: 10, ..LoginLimits::default() };
        for t in 0..3 {
            reserve(&db, &limits, "a@b.co", "1.2.3.4", 1000 + t).unwrap().expect("allowed").failed();
        }
        assert_eq!(reserve(&db, &limits, "a@b.co", "1.2.3.4", 1010).unwrap().unwrap_err(), 90);
        reserve(&db, &limits, "other@b.co", "1.2.3.4", 1010).unwrap().expect("other emails are fine").failed();
        reserve(&db, &limits, "a@b.co", "1.2.3.4", 1100).unwrap().expect("window over").failed();
    }

    #[test]
    fn a_refused_email_does_not_count_against_the_client() {
        let db = db();
        let limits = LoginLimits { window_secs: 100, per_email: 1, per_client: 3, ..LoginLimits::default() };
        reserve(&db, &limits, "a@b.co", "1.2.3.4", 1000).unwrap().unwrap().failed();
        for _ in 0..5 {
            assert!(reserve(&db, &limits, "a@b.co", "1.2.3.4", 1001).unwrap().is_err());
        }
        assert_eq!(repository::count(&db, Counter::LoginFailures, "client:1.2.3.4").unwrap(), Some((1, 1000)));
    }

    #[test]
    fn success_gives_the_client_slot_back_and_clears_the_email() {
        let db = db();
        let limits = LoginLimits { window_secs: 100, per_email: 2, per_client: 2, ..LoginLimits::default() };
        reserve(&db, &limits, "a@b.co", "1.2.3.4", 1000).unwrap().unwrap().failed();
        reserve(&db, &limits, "a@b.co", "1.2.3.4", 1000).unwrap().unwrap().succeeded(&db).unwrap();
        assert_eq!(repository::count(&db, Counter::LoginFailures, "email:a@b.co").unwrap(), None);
        assert_eq!(repository::count(&db, Counter::LoginFailures, "client:1.2.3.4").unwrap(), Some((1, 1000)));
    }

    #[test]
    fn the_client_limit_spans_emails() {
        let db = db();
        let limits = LoginLimits { window_secs: 100, per_email: 50, per_client: 4, ..LoginLimits::default() };
        for i in 0..4 {
            reserve(&db, &limits, &format!("u{i}@b.co"), "9.9.9.9", 1000).unwrap().unwrap().failed();
        }
        assert!(reserve(&db, &limits, "fresh@b.co", "9.9.9.9", 1001).unwrap().is_err());
        assert!(reserve(&db, &limits, "fresh@b.co", "8.8.8.8", 1001).unwrap().is_ok());
    }

    /// Found in review: five wrong guesses from anyone locked the owner out
    /// everywhere. One client is stopped at five for an email; the email
    /// from anywhere only at its higher limit.
    #[test]
    fn guesses_from_one_client_do_not_lock_the_owner_out_elsewhere() {
        let db = db();
        let limits = LoginLimits { window_secs: 100, per_email_and_client: 2, per_email: 4, per_client: 50, ..LoginLimits::default() };
        for _ in 0..2 {
            reserve(&db, &limits, "a@b.co", "6.6.6.6", 1000).unwrap().unwrap().failed();
        }
        assert!(reserve(&db, &limits, "a@b.co", "6.6.6.6", 1001).unwrap().is_err(), "that client is stopped");
        reserve(&db, &limits, "a@b.co", "1.2.3.4", 1001).unwrap().expect("the owner elsewhere is not").succeeded(&db).unwrap();
        // Spread over clients, the email's own limit stops them all.
        for ip in ["7.7.7.1", "7.7.7.2", "7.7.7.3", "7.7.7.4"] {
            reserve(&db, &limits, "a@b.co", ip, 1002).unwrap().unwrap().failed();
        }
        assert!(reserve(&db, &limits, "a@b.co", "1.2.3.4", 1003).unwrap().is_err());
        // Text sent as an email names no other client's count for it.
        reserve(&db, &limits, "b@b.co|6.6.6.6", "9.9.9.9", 1004).unwrap().unwrap().failed();
        assert_ne!(pair_key("b@b.co|6.6.6.6", "9.9.9.9"), pair_key("b@b.co", "6.6.6.6"));
        repository::clear_email_counters(&db, "a@b.co", 1005).unwrap();
        let left = db.query("SELECT key FROM login_failures WHERE key LIKE '%a@b.co%'", &[]).unwrap();
        assert!(left.is_empty(), "an erasure leaves no count naming the email");
    }

    #[test]
    fn every_check_right_or_wrong_takes_one_of_the_client_s_hourly_checks() {
        let db = db();
        let limits = LoginLimits { checks_per_client_hourly: 3, ..LoginLimits::default() };
        for t in 0..3 {
            reserve(&db, &limits, "a@b.co", "1.2.3.4", 1000 + t).unwrap().unwrap().succeeded(&db).unwrap();
        }
        assert_eq!(reserve(&db, &limits, "a@b.co", "1.2.3.4", 1010).unwrap().unwrap_err(), 3590, "until the hour ends");
        assert!(reserve(&db, &limits, "a@b.co", "5.6.7.8", 1010).unwrap().is_ok(), "another client is not held up");
        reserve(&db, &limits, "a@b.co", "1.2.3.4", 4600).unwrap().expect("a new hour").failed();
        // A check refused by the failure limits never ran: it takes none.
        let strict = LoginLimits { per_email: 1, checks_per_client_hourly: 2, ..LoginLimits::default() };
        reserve(&db, &strict, "x@b.co", "9.9.9.9", 1000).unwrap().unwrap().failed();
        for _ in 0..3 {
            assert!(reserve(&db, &strict, "x@b.co", "9.9.9.9", 1001).unwrap().is_err());
        }
        assert!(reserve(&db, &strict, "y@b.co", "9.9.9.9", 1002).unwrap().is_ok());
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let peer = Some("10.0.0.9:40000");
        assert_eq!(client_address(peer, Some("6.6.6.6, 1.2.3.4"), 0), "10.0.0.9", "no proxy trusted: the header is ignored");
        assert_eq!(client_address(peer, Some("6.6.6.6, 1.2.3.4"), 1), "1.2.3.4", "the entry the ingress wrote");
        assert_eq!(client_address(peer, Some("6.6.6.6, 1.2.3.4, 172.16.0.1"), 2), "1.2.3.4");
        assert_eq!(client_address(peer, Some("1.2.3.4"), 3), "1.2.3.4", "fewer entries than hops: the leftmost");
        assert_eq!(client_address(peer, None, 1), "10.0.0.9", "no header: the peer");
        assert_eq!(client_address(peer, Some(" , "), 1), "10.0.0.9");
        assert_eq!(client_address(peer, Some("[2001:db8::1]:443"), 1), "2001:db8::/64");
        assert_eq!(client_address(peer, Some("2001:db8::1"), 1), "2001:db8::/64");
    }
}
