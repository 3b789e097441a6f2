//! The admin console's view of every order: filters parsed into
//! [`OrderFilter`] (only valid values can be held), and one SQL query that
//! reads the same in the SQLite and Postgres dialects (`?` placeholders,
//! `substr`, `LIKE`, `LIMIT/OFFSET`: nothing dialect-specific).

use crate::domain::Status;
use crate::orders::{self, Order};
use storage::{Db, DbError, Value};

/// The most customers one listing may name (the console resolves an email
/// search to account ids, and a short search can match several).
pub const MAX_USER_IDS: usize = 20;

/// A calendar day, `YYYY-MM-DD` (UTC), as orders' `created_at` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day(String);

impl Day {
    /// Accepts exactly `YYYY-MM-DD` with a real month and day (1 to 31).
    pub fn parse(raw: &str) -> Result<Day, &'static str> {
        let raw = raw.trim();
        let b = raw.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
            return Err("must be a date written YYYY-MM-DD");
        }
        let month: u32 = raw[5..7].parse().map_err(|_| "must be a date written YYYY-MM-DD")?;
        let day: u32 = raw[8..10].parse().map_err(|_| "must be a date written YYYY-MM-DD")?;
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err("must be a real date (month 01-12, day 01-31)");
        }
        Ok(Day(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The beginning of an order id (hex digits and dashes, 4 to 36 of them):
/// admins paste the short form the console shows, or the whole id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderIdPrefix(String);

impl OrderIdPrefix {
    pub fn parse(raw: &str) -> Result<OrderIdPrefix, &'static str> {
        let text = raw.trim().to_ascii_lowercase();
        if !(4..=36).contains(&text.len()) || !text.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err("must be the start of an order id: 4 to 36 hex digits and dashes");
        }
        Ok(OrderIdPrefix(text))
    }
}

/// What the admin listing narrows to; every filter is optional and they
/// combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub status: Option<Status>,
    /// Placed on or after this day.
    pub created_from: Option<Day>,
    /// Placed on or before this day.
    pub created_to: Option<Day>,
    pub order_id: Option<OrderIdPrefix>,
    /// Orders of any of these accounts (at most [`MAX_USER_IDS`]).
    pub user_ids: Vec<String>,
}

impl OrderFilter {
    /// The WHERE clause and its parameters.
    fn where_clause(&self) -> (String, Vec<Value>) {
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(s) = self.status {
            conditions.push("status = ?".into());
            params.push(s.as_str().into());
        }
        if let Some(d) = &self.created_from {
            conditions.push("substr(created_at, 1, 10) >= ?".into());
            params.push(d.as_str().into());
        }
        if let Some(d) = &self.created_to {
            conditions.push("substr(created_at, 1, 10) <= ?".into());
            params.push(d.as_str().into());
        }
        if let Some(p) = &self.order_id {
            // Only hex digits and dashes: no LIKE wildcard can be in it.
            conditions.push("id LIKE ?".into());
            params.push(format!("{}%", p.0).into());
        }
        if !self.user_ids.is_empty() {
            conditions.push(format!("user_id IN ({})", vec!["?"; self.user_ids.len()].join(", ")));
            params.extend(self.user_ids.iter().map(|u| Value::from(u.as_str())));
        }
        let clause = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
        (clause, params)
    }
}

/// Every order matching `filter`, newest first, with the total across pages.
pub fn list_all(db: &dyn Db, filter: &OrderFilter, limit: u32, offset: i64) -> Result<(Vec<Order>, i64), DbError> {
    let (clause, params) = filter.where_clause();
    orders::list_page(db, &clause, &params, limit, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_strict() {
        assert_eq!(Day::parse(" 2026-12-02 ").unwrap().as_str(), "2026-12-02");
        for bad in ["2026-1-02", "2026-13-01", "2026-00-10", "2026-12-32", "02-12-2026", "2026-12-02T00:00:00Z", "", "2026/12/02"] {
            assert!(Day::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_id_prefixes_hold_no_wildcards() {
        assert!(OrderIdPrefix::parse("7C9E6679").is_ok());
        assert!(OrderIdPrefix::parse("7c9e6679-7425-40de-944b-e07fc1f90ae7").is_ok());
        for bad in ["7c9", "7c9e%", "7c9e_", "abcd'--", "7c9e6679-7425-40de-944b-e07fc1f90ae7-0"] {
            assert!(OrderIdPrefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_combine_with_and() {
        let f = OrderFilter {
            status: Some(Status::Paid),
            created_from: Some(Day::parse("2026-12-01").unwrap()),
            created_to: None,
            order_id: Some(OrderIdPrefix::parse("abcd").unwrap()),
            user_ids: vec!["u1".into(), "u2".into()],
        };
        let (clause, params) = f.where_clause();
        assert_eq!(clause, " WHERE status = ? AND substr(created_at, 1, 10) >= ? AND id LIKE ? AND user_id IN (?, ?)");
        assert_eq!(params.len(), 5);
        assert_eq!(OrderFilter::default().where_clause().0, "");
    }
}
