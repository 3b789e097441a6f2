//! Promotional email: rendered from a promotion the users service recorded
//! (subject, HTML and text written by an admin), one per consenting
//! customer, each with a signed one-click unsubscribe link in its body and
//! in `List-Unsubscribe` / `List-Unsubscribe-Post` headers (RFC 8058).
//! Sent in batches through Resend's batch endpoint, at most one batch per
//! [`BATCH_GAP_MS`] across all instances (see `deliveries::take_promotion_slot`).
//!
//! A promotion reaches this service as one `promotion.send` outbox event
//! naming the promotion and no customer ([`register_fan_out`]); the sweep
//! then makes its deliveries a page of customers at a time ([`fan_out`]),
//! so no write anywhere grows with the length of the list.

use crate::deliveries::{idempotency_key, insert_new, EventTrace, NewDelivery, OwnEmail, Recipient, PROMOTION};
use crate::templates::html_escape;
use serde_json::json;
use storage::{transaction, Db, DbError};

/// What an unsubscribe link signs (the users service checks the same).
pub const UNSUBSCRIBE_PURPOSE: &str = "unsubscribe";
/// Emails per Resend batch request (Resend's maximum).
pub const BATCH_SIZE: u32 = 100;
/// At most one promotional batch per second: Resend's default team limit is
/// 2 requests per second, so transactional email keeps the other.
pub const BATCH_GAP_MS: i64 = 1000;

/// The one-click unsubscribe URL for `user_id`.
pub fn unsubscribe_link(storefront_url: &str, secret: &str, user_id: &str) -> String {
    let sig = http_kit::signed_links::sign(secret, UNSUBSCRIBE_PURPOSE, user_id);
    format!("{}/api/users/unsubscribe?user={user_id}&sig={sig}", storefront_url.trim_end_matches('/'))
}

/// A promotion's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The email of `promotion` to `to`, with its unsubscribe link and headers.
/// The admin's HTML is used as written (admins are trusted authors); the
/// footer's values are escaped.
pub fn render(promotion: &Promotion, to: Recipient, link: &str, store_name: &str) -> OwnEmail {
    let why = format!("You get this email because you opted in to offers from {store_name}.");
    let html = format!(
        "{}\n<hr>\n<p style=\"font-size:12px;color:#666\">{} <a href=\"{}\">Unsubscribe</a> (order and account emails are not affected).</p>",
        promotion.html,
        html_escape(&why),
        html_escape(link)
    );
    let text = format!("{}\n\n--\n{why} Unsubscribe: {link}\n(Order and account emails are not affected.)", promotion.text);
    let headers = json!({
        "List-Unsubscribe": format!("<{link}>"),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    });
    OwnEmail { to, subject: promotion.subject.clone(), html, text, headers: Some(headers.to_string()) }
}

/// Customers read from the users database per fan-out step.
pub const FAN_OUT_PAGE: usize = 250;

/// Record that the promotion `promotion_id` (its users outbox row
/// `source_id`) is to be fanned out. Idempotent: a second pull of the
/// same event changes nothing. In the pull's transaction.
pub fn register_fan_out(tx: &dyn Db, promotion_id: &str, source_id: i64, trace: &EventTrace, stamp: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO promotion_fanouts (promotion_id, source_id, traceparent, tracestate, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        &[promotion_id.into(), source_id.into(), trace.traceparent.clone().into(), trace.tracestate.clone().into(), stamp.into()],
    )
}

/// One step of fanning out: for the oldest promotion not fanned out yet,
/// the next [`FAN_OUT_PAGE`] customers (in id order) who consented by the
/// time it was sent and still do, from a confirmed address, read from the
/// users database; each gets a pending delivery rendered by `render`, keyed
/// `promotion.send/<promotion>/<customer>` as before. Returns how many
/// deliveries were made (see [`FanOutPage::store`]).
pub fn fan_out(db: &dyn Db, users: &dyn Db, render: &dyn Fn(&Promotion, Recipient) -> OwnEmail, now: i64) -> Result<usize, DbError> {
    match FanOutPage::next(db, users, render)? {
        Some(page) => page.store(db, now),
        None => Ok(0),
    }
}

/// A page of one promotion's deliveries, read but not stored yet.
pub struct FanOutPage {
    promotion_id: String,
    after: String,
    last: String,
    fanned: i64,
    done: bool,
    pending: Vec<NewDelivery>,
}

impl FanOutPage {
    /// The next page to store, if any promotion is still being fanned out.
    pub fn next(db: &dyn Db, users: &dyn Db, render: &dyn Fn(&Promotion, Recipient) -> OwnEmail) -> Result<Option<FanOutPage>, DbError> {
        let rows = db.query(
            "SELECT promotion_id, after_user, fanned, traceparent, tracestate FROM promotion_fanouts WHERE done_at IS NULL ORDER BY source_id LIMIT 1",
            &[],
        )?;
        let Some(row) = rows.first() else { return Ok(None) };
        let (id, after, fanned) = (row.text("promotion_id")?, row.text("after_user")?, row.int("fanned")?);
        let trace = EventTrace { traceparent: row.opt_text("traceparent")?, tracestate: row.opt_text("tracestate")? };
        let content = users.query("SELECT subject, html, text, created_at FROM promotions WHERE id = ?", &[id.as_str().into()])?;
        let Some(content) = content.first() else {
            // Nothing to send (the users database has no such promotion): finished.
            return Ok(Some(FanOutPage { promotion_id: id, last: after.clone(), after, fanned, done: true, pending: Vec::new() }));
        };
        let promotion = Promotion { subject: content.text("subject")?, html: content.text("html")?, text: content.text("text")? };
        let customers = users.query(
            &format!(
                "SELECT id, email FROM users WHERE id > ? AND marketing_consent_at IS NOT NULL AND marketing_consent_at <= ? \
                 AND email_verified_at IS NOT NULL AND deleted_at IS NULL ORDER BY id LIMIT {FAN_OUT_PAGE}"
            ),
            &[after.as_str().into(), content.text("created_at")?.into()],
        )?;
        let mut pending = Vec::new();
        let mut last = after.clone();
        for (i, c) in customers.iter().enumerate() {
            let (user_id, email) = (c.text("id")?, c.text("email")?);
            if crate::privacy::deliverable(&email) {
                let OwnEmail { to, subject, html, text, headers } = render(&promotion, Recipient::of_account(&user_id, email));
                let key = idempotency_key(PROMOTION, &format!("{id}/{user_id}"));
                let source_id = fanned + i as i64 + 1;
                pending.push(NewDelivery { source_id, channel: "email", event_type: PROMOTION.into(), key, to, subject, html, text, headers, trace: trace.clone() });
            }
            last = user_id;
        }
        let done = customers.len() < FAN_OUT_PAGE;
        Ok(Some(FanOutPage { promotion_id: id, after, last, fanned: fanned + customers.len() as i64, done, pending }))
    }

    /// Store the page's deliveries and move the fan-out past them, in one
    /// transaction, only if the fan-out still stands where the page was
    /// read from: a step that dies is done again, and of two sweeps that
    /// read the same page only the first stores it. Returns how many
    /// deliveries were made (none for accounts erased meanwhile).
    pub fn store(&self, db: &dyn Db, now: i64) -> Result<usize, DbError> {
        let stamp = clock::now_rfc3339();
        let done = self.done.then_some(stamp.as_str());
        transaction(db, |tx| {
            crate::privacy::lock_log(tx)?;
            let moved = tx.query(
                "UPDATE promotion_fanouts SET after_user = ?, fanned = ?, done_at = ? \
                 WHERE promotion_id = ? AND after_user = ? AND done_at IS NULL RETURNING promotion_id",
                &[self.last.as_str().into(), self.fanned.into(), done.into(), self.promotion_id.as_str().into(), self.after.as_str().into()],
            )?;
            if moved.is_empty() {
                return Ok(0);
            }
            insert_new(tx, &format!("promotion/{}", self.promotion_id), &self.pending, now, &stamp)
        })
    }
}

/// The customer a promotional delivery is for, from its idempotency key
/// (`promotion.send/<promotion id>/<user id>`).
pub fn user_of(idempotency_key: &str) -> Option<&str> {
    idempotency_key.strip_prefix("promotion.send/")?.split('/').nth(1).filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    #[test]
    fn promotions_carry_a_signed_one_click_unsubscribe() {
        let link = unsubscribe_link("https://shop.example/", "k", "u-1");
        assert_eq!(link, format!("https://shop.example/api/users/unsubscribe?user=u-1&sig={}", http_kit::signed_links::sign("k", "unsubscribe", "u-1")));
        let p = Promotion { subject: "Sale".into(), html: "<h1>50% off</h1>".into(), text: "50% off".into() };
        let e = render(&p, Recipient::of_account("u-1", "ann@example.com"), &link, "Shop & Co");
        assert!(e.html.starts_with("<h1>50% off</h1>") && e.html.contains("Shop &amp; Co") && e.html.contains(&link.replace('&', "&amp;")));
        assert!(e.text.contains(&format!("Unsubscribe: {link}")));
        let h: serde_json::Value = serde_json::from_str(e.headers.as_deref().unwrap()).unwrap();
        assert_eq!(h["List-Unsubscribe"], format!("<{link}>"));
        assert_eq!(h["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
    }

    /// A users database with `n` customers who consent (ids `u-0001`…),
    /// and a promotion sent at 2026-12-07T10:00:00Z.
    fn users_with(n: usize) -> MemDb {
        let users = MemDb::new();
        users
            .execute(
                "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, marketing_consent_at TEXT, email_verified_at TEXT, deleted_at TEXT)",
                &[],
            )
            .unwrap();
        users.execute("CREATE TABLE promotions (id TEXT PRIMARY KEY, subject TEXT, html TEXT, text TEXT, created_at TEXT)", &[]).unwrap();
        users.execute("INSERT INTO promotions VALUES ('p-1', 'Sale', '<p>Sale</p>', 'Sale', '2026-12-07T10:00:00Z')", &[]).unwrap();
        for i in 1..=n {
            users
                .execute(
                    "INSERT INTO users VALUES (?, ?, '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z', NULL)",
                    &[format!("u-{i:04}").into(), format!("c{i}@example.com").into()],
                )
                .unwrap();
        }
        users
    }

    fn render_plain(p: &Promotion, to: Recipient) -> OwnEmail {
        render(p, to, "https://shop.example/u", "Shop")
    }

    fn registered(db: &MemDb) {
        transaction(db, |tx| register_fan_out(tx, "p-1", 7, &EventTrace::default(), "t")).unwrap();
    }

    #[test]
    fn a_promotion_is_fanned_out_a_page_at_a_time_to_who_consented_when_it_was_sent() {
        let (db, _) = crate::test_support::setup();
        let users = users_with(600);
        // Not to: a later opt-in, an unconfirmed address, a deleted account,
        // an erased one, one who never consented.
        users.execute("INSERT INTO users VALUES ('u-0100a', 'late@example.com', '2026-12-07T10:00:01Z', '2026-12-01T00:00:00Z', NULL)", &[]).unwrap();
        users.execute("INSERT INTO users VALUES ('u-0200a', 'unconfirmed@example.com', '2026-12-01T00:00:00Z', NULL, NULL)", &[]).unwrap();
        users.execute("INSERT INTO users VALUES ('u-0300a', 'gone@example.com', '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z', 'x')", &[]).unwrap();
        users.execute("INSERT INTO users VALUES ('u-0400a', 'no@example.com', NULL, '2026-12-01T00:00:00Z', NULL)", &[]).unwrap();
        db.execute("INSERT INTO erased_accounts (user_id, erased_at) VALUES ('u-0500', 't')", &[]).unwrap();
        registered(&db);
        registered(&db);
        let steps: Vec<usize> = (0..4).map(|_| fan_out(&db, &users, &render_plain, 0).unwrap()).collect();
        assert_eq!(steps, vec![250, 249, 100, 0]);
        let keys: Vec<String> = db.query("SELECT idempotency_key FROM deliveries ORDER BY id", &[]).unwrap().iter().map(|r| r.text("idempotency_key").unwrap()).collect();
        assert_eq!(keys.len(), 599);
        assert_eq!(keys.first().map(String::as_str), Some("promotion.send/p-1/u-0001"));
        assert!(!keys.iter().any(|k| k.ends_with("a") || k.ends_with("/u-0500")), "{keys:?}");
        let done = db.query("SELECT fanned, done_at FROM promotion_fanouts", &[]).unwrap();
        assert_eq!(done.first().unwrap().int("fanned").unwrap(), 600);
        assert!(done.first().unwrap().opt_text("done_at").unwrap().is_some());
    }

    #[test]
    fn of_two_sweeps_that_read_the_same_page_only_the_first_stores_it() {
        let (db, _) = crate::test_support::setup();
        let users = users_with(300);
        registered(&db);
        let first = FanOutPage::next(&db, &users, &render_plain).unwrap().unwrap();
        let second = FanOutPage::next(&db, &users, &render_plain).unwrap().unwrap();
        assert_eq!((first.store(&db, 0).unwrap(), second.store(&db, 0).unwrap()), (250, 0));
        assert_eq!(fan_out(&db, &users, &render_plain, 0).unwrap(), 50);
        let n = db.query("SELECT COUNT(*) AS n FROM deliveries", &[]).unwrap().first().unwrap().int("n").unwrap();
        assert_eq!(n, 300);
    }

    #[test]
    fn a_promotion_the_users_database_does_not_have_is_finished_with_nothing_sent() {
        let (db, _) = crate::test_support::setup();
        let users = users_with(3);
        users.execute("DELETE FROM promotions", &[]).unwrap();
        registered(&db);
        assert_eq!(fan_out(&db, &users, &render_plain, 0).unwrap(), 0);
        assert!(FanOutPage::next(&db, &users, &render_plain).unwrap().is_none());
    }

    #[test]
    fn the_customer_is_read_from_the_key() {
        assert_eq!(user_of("promotion.send/p-1/u-1"), Some("u-1"));
        assert_eq!(user_of("order.paid/o-1"), None);
        assert_eq!(user_of("promotion.send/p-1"), None);
    }
}
