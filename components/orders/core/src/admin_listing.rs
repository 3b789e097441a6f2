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
    /// Accepts exactly `YYYY-MM-DD` naming a day of the calendar (so
    /// `2026-02-29` and `2026-04-31` are refused, `2028-02-29` is not).
    pub fn parse(raw: &str) -> Result<Day, &'static str> {
        let raw = raw.trim();
        let b = raw.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
            return Err("must be a date written YYYY-MM-DD");
        }
        let year: u32 = raw[0..4].parse().map_err(|_| "must be a date written YYYY-MM-DD")?;
        let month: u32 = raw[5..7].parse().map_err(|_| "must be a date written YYYY-MM-DD")?;
        let day: u32 = raw[8..10].parse().map_err(|_| "must be a date written YYYY-MM-DD")?;
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => 0,
        };
        if !(1..=days_in_month).contains(&day) {
            return Err("must be a real date (month 01-12, and a day that month has)");
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
        // Regression: any day 01-31 passed in any month.
        for bad in ["2026-02-29", "2026-02-30", "2026-04-31", "2100-02-29", "2026-11-31"] {
            assert!(Day::parse(bad).is_err(), "{bad}");
        }
        for good in ["2028-02-29", "2000-02-29", "2026-01-31", "2026-04-30"] {
            assert!(Day::parse(good).is_ok(), "{good}");
        }
    }

    use proptest::prelude::*;

    proptest! {
        /// A day parses iff it is a day of the calendar, as the shop's own
        /// clock formats it; any other text is refused, never a panic.
        #[test]
        fn days_are_calendar_days(secs in -62_135_596_800i64..253_402_300_799, raw in prop_oneof![".{0,12}", "[0-9]{4}-[0-9]{2}-[0-9]{2}"]) {
            let date = &clock::format_rfc3339(secs)[..10];
            prop_assert_eq!(Day::parse(date).map(|d| d.as_str().to_string()), Ok(date.to_string()));
            if let Ok(d) = Day::parse(&raw) {
                prop_assert_eq!(d.as_str(), raw.trim());
            }
        }

        #[test]
        fn order_id_prefixes_and_statuses_never_panic(raw in ".{0,40}") {
            if let Ok(p) = OrderIdPrefix::parse(&raw) {
                prop_assert!(p.0.len() >= 4 && p.0.len() <= 36 && p.0.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase() || b == b'-'));
            }
            if let Some(s) = Status::parse(&raw) {
                prop_assert_eq!(s.as_str(), raw.as_str());
            }
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
