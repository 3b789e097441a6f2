//! Retention: rows that can no longer matter are removed by the requests
//! that make such rows, a few at a time, so the users database stays near
//! its live size without a scheduler.
//!
//! - a failed-sign-in or request count whose window has ended (a new
//!   attempt would start it over anyway);
//! - a refresh token a day past its expiry (it is refused from the moment
//!   it expires, before any reuse check), and its session once no token of
//!   it is left (it can never be refreshed again, so it is over);
//! - an emailed link (verification, reset) a day past its expiry.
//!
//! Every call that can add such a row (a password check, a sign-in, a
//! refresh, an emailed link, a counted request) removes up to [`BATCH`]
//! of each kind afterwards, in transactions of its own: each adds at most
//! a row or two, so ended rows never pile up. A failure is left for the
//! next call. On Postgres the rows are picked with `SKIP LOCKED`; the
//! counters and links never wait for another transaction, and the tokens
//! and sessions wait only for a session another request holds (none waits
//! for a token a day past its expiry, so no wait can come back round).

use crate::repository::Counter;
use storage::{transaction, Db, DbError, Dialect};

/// Rows of each kind removed per call, at most.
pub const BATCH: i64 = 8;

/// How long a refresh token or an emailed link is kept after it expired.
pub const KEEP_EXPIRED_SECS: i64 = 86_400;

/// The window of every request count (`request_counts`): an hour.
pub const REQUEST_WINDOW_SECS: i64 = 3600;

fn skip_locked(db: &dyn Db) -> &'static str {
    match db.dialect() {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    }
}

/// Remove ended counts (failed sign-ins in windows of
/// `login_window_secs`, requests in hour windows) and emailed links a day
/// past their expiry. Returns the rows removed.
pub fn tidy_counts_and_links(db: &dyn Db, now: i64, login_window_secs: i64) -> Result<u64, DbError> {
    transaction(db, |tx| {
        let lock = skip_locked(tx);
        let mut removed = 0;
        for (counter, window) in [(Counter::LoginFailures, login_window_secs), (Counter::Requests, REQUEST_WINDOW_SECS)] {
            let table = counter.table_name();
            removed += tx
                .query(
                    &format!(
                        "DELETE FROM {table} WHERE key IN \
                         (SELECT key FROM {table} WHERE window_started_at <= ? LIMIT {BATCH}{lock}) RETURNING key"
                    ),
                    &[(now - window).into()],
                )?
                .len() as u64;
        }
        removed += tx
            .query(
                &format!(
                    "DELETE FROM account_tokens WHERE token_hash IN \
                     (SELECT token_hash FROM account_tokens WHERE expires_at <= ? LIMIT {BATCH}{lock}) RETURNING token_hash"
                ),
                &[(now - KEEP_EXPIRED_SECS).into()],
            )?
            .len() as u64;
        Ok(removed)
    })
}

/// Remove refresh tokens a day past their expiry, and each session of
/// theirs that has no token left. Returns (tokens, sessions) removed.
pub fn tidy_sessions(db: &dyn Db, now: i64) -> Result<(u64, u64), DbError> {
    transaction(db, |tx| {
        let rows = tx.query(
            &format!(
                "DELETE FROM refresh_tokens WHERE token_hash IN \
                 (SELECT token_hash FROM refresh_tokens WHERE expires_at <= ? ORDER BY expires_at LIMIT {BATCH}{}) \
                 RETURNING session_id",
                skip_locked(tx)
            ),
            &[(now - KEEP_EXPIRED_SECS).into()],
        )?;
        let mut sessions = rows.iter().map(|r| r.text("session_id")).collect::<Result<Vec<_>, _>>()?;
        sessions.sort();
        sessions.dedup();
        let mut ended = 0;
        for id in &sessions {
            ended += tx
                .query(
                    "DELETE FROM sessions WHERE id = ? AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE session_id = ?) RETURNING id",
                    &[id.as_str().into(), id.as_str().into()],
                )?
                .len() as u64;
        }
        Ok((rows.len() as u64, ended))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::{self, take_slot};

    fn db() -> storage::native::MemDb {
        let db = storage::native::MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        db
    }

    fn count_rows(db: &dyn Db, table: &str) -> i64 {
        db.query(&format!("SELECT COUNT(*) AS n FROM {table}"), &[]).unwrap().first().unwrap().int("n").unwrap()
    }

    #[test]
    fn ended_counts_go_and_live_ones_stay() {
        let db = db();
        for i in 0..20 {
            take_slot(&db, Counter::LoginFailures, &format!("client:10.0.0.{i}"), 1000, 900, 5).unwrap();
            take_slot(&db, Counter::Requests, &format!("checks:client:10.0.0.{i}"), 1000, REQUEST_WINDOW_SECS, 5).unwrap();
        }
        take_slot(&db, Counter::LoginFailures, "client:live", 4000, 900, 5).unwrap();
        take_slot(&db, Counter::Requests, "checks:client:live", 4000, REQUEST_WINDOW_SECS, 5).unwrap();
        // At 4600 the request windows started at 1000 (an hour) have ended;
        // login windows of 4000 s started then have not, those of 900 s
        // have. The ones started at 4000 are live.
        assert_eq!(tidy_counts_and_links(&db, 4600, 4000).unwrap(), BATCH as u64, "request counts only");
        assert_eq!(tidy_counts_and_links(&db, 4600, 900).unwrap(), 2 * BATCH as u64);
        assert_eq!(tidy_counts_and_links(&db, 4600, 900).unwrap(), BATCH as u64 + 4);
        assert_eq!(tidy_counts_and_links(&db, 4600, 900).unwrap(), 4);
        assert_eq!(tidy_counts_and_links(&db, 4600, 900).unwrap(), 0);
        assert_eq!(repository::count(&db, Counter::LoginFailures, "client:live").unwrap(), Some((1, 4000)));
        assert_eq!(repository::count(&db, Counter::Requests, "checks:client:live").unwrap(), Some((1, 4000)));
        assert_eq!((count_rows(&db, "login_failures"), count_rows(&db, "request_counts")), (1, 1));
    }

    fn session(db: &dyn Db, id: &str, token_expiries: &[i64]) {
        db.execute("INSERT INTO users (id, email, password_hash, first_name, last_name, role, created_at, updated_at) VALUES (?, ?, '!', 'A', 'B', 'customer', 't', 't')", &[id.into(), format!("{id}@example.com").into()]).unwrap();
        repository::create_session(db, id, id, "t").unwrap();
        for (i, expires) in token_expiries.iter().enumerate() {
            repository::insert_refresh_token(db, &format!("{id}-{i}"), id, &format!("{id}-jti-{i}"), expires - 100, *expires).unwrap();
        }
    }

    #[test]
    fn a_session_goes_with_its_last_token_a_day_after_it_expired() {
        let db = db();
        // Rotated twice: tokens expiring at 1000, 2000 and 3000.
        session(&db, "s1", &[1000, 2000, 3000]);
        session(&db, "s2", &[1500]);
        let day = KEEP_EXPIRED_SECS;
        assert_eq!(tidy_sessions(&db, 1000 + day - 1).unwrap(), (0, 0), "kept a day past expiry");
        assert_eq!(tidy_sessions(&db, 2000 + day).unwrap(), (3, 1), "two of s1's, and s2 with its only one");
        assert!(repository::find_refresh_token(&db, "s1-2").unwrap().is_some(), "s1's newest token is kept");
        assert_eq!(count_rows(&db, "sessions"), 1);
        assert_eq!(tidy_sessions(&db, 3000 + day).unwrap(), (1, 1));
        assert_eq!((count_rows(&db, "sessions"), count_rows(&db, "refresh_tokens")), (0, 0));
    }

    #[test]
    fn a_call_removes_at_most_a_batch() {
        let db = db();
        for i in 0..(BATCH + 3) {
            session(&db, &format!("s{i:02}"), &[1000]);
        }
        assert_eq!(tidy_sessions(&db, 1000 + KEEP_EXPIRED_SECS).unwrap(), (BATCH as u64, BATCH as u64));
        assert_eq!(tidy_sessions(&db, 1000 + KEEP_EXPIRED_SECS).unwrap(), (3, 3));
    }

    #[test]
    fn on_postgres_rows_another_transaction_holds_are_skipped() {
        let db = storage::native::Recorder::postgres();
        tidy_counts_and_links(&db, 5000, 900).unwrap();
        tidy_sessions(&db, 5000).unwrap();
        let picks: Vec<_> = db.statements().into_iter().filter(|s| s.contains("(SELECT")).collect();
        assert_eq!(picks.len(), 4, "{picks:?}");
        assert!(picks.iter().all(|s| s.contains("FOR UPDATE SKIP LOCKED)")), "{picks:?}");
    }
}
