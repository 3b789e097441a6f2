//! The notifications service's figures for `GET /metrics` (through the
//! `shop:notifications/metrics` contract), and its sweep counter.
//!
//! Cost: deliveries are counted through the `deliveries_due (status, ...)`
//! index, which a `status IN ('pending', 'sending', 'failed')` range keeps
//! to the deliveries not yet out (sent and logged ones are never read); per
//! outbox, the cursor, the first unread event and the oldest undelivered
//! event are primary-key look-ups, and the oldest pending delivery uses the
//! same index. At most ten statements for two outboxes.

use crate::deliveries::{cursor, outbox_absent};
use storage::counters::{self, Counter};
use storage::{Db, DbError};

/// Deliveries failed on purpose, not by a provider: consent withdrawn
/// before the send (`not sent: ...`), or the account deleted meanwhile.
const UNSENT_ON_PURPOSE: &str = "COALESCE(last_error, '') LIKE 'not sent: %' OR COALESCE(last_error, '') = 'the recipient deleted their account'";

/// The `ops_counters` row of `POST /api/notifications/sweep`.
pub const SWEEP: &str = "sweep";

/// The channels deliveries go by, each reported even with nothing in it.
pub const CHANNELS: [&str; 2] = ["email", "sms"];

/// Deliveries of one channel not out yet, and given up for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFigures {
    pub channel: String,
    /// Waiting for an attempt or being sent.
    pub pending: i64,
    /// Given up for good: refused by the provider, or out of retries. Not
    /// those left unsent on purpose (consent withdrawn, the account
    /// deleted): found in review, every campaign and deletion set off the
    /// failure alert.
    pub failed: i64,
}

/// What the notifications service reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationFigures {
    /// Per channel, in [`CHANNELS`] order.
    pub channels: Vec<ChannelFigures>,
    /// Per outbox (in the order given): the age in seconds of its oldest
    /// event whose email is not out yet, 0 when none waits.
    pub outboxes: Vec<(String, i64)>,
    pub sweep: Counter,
}

/// The figures at `now`, reading each `(name, outbox)` source.
pub fn notification_figures(db: &dyn Db, outboxes: &[(&str, &dyn Db)], now: i64) -> Result<NotificationFigures, DbError> {
    let mut channels: Vec<ChannelFigures> = CHANNELS.iter().map(|c| ChannelFigures { channel: c.to_string(), pending: 0, failed: 0 }).collect();
    let rows = db.query(
        &format!(
            "SELECT channel, status, COUNT(*) AS n FROM deliveries WHERE status IN ('pending', 'sending', 'failed') \
             AND NOT (status = 'failed' AND ({UNSENT_ON_PURPOSE})) GROUP BY channel, status"
        ),
        &[],
    )?;
    for row in rows.iter() {
        let channel = row.text("channel")?;
        let at = match channels.iter().position(|c| c.channel == channel) {
            Some(at) => at,
            None => {
                channels.push(ChannelFigures { channel, pending: 0, failed: 0 });
                channels.len() - 1
            }
        };
        match row.text("status")?.as_str() {
            "failed" => channels[at].failed += row.int("n")?,
            _ => channels[at].pending += row.int("n")?,
        }
    }
    let mut ages = Vec::new();
    for (name, outbox) in outboxes {
        let oldest = oldest_undelivered(db, name, *outbox)?;
        let age = oldest.and_then(|at| clock::parse_rfc3339(&at)).map(|at| (now - at).max(0)).unwrap_or(0);
        ages.push((name.to_string(), age));
    }
    Ok(NotificationFigures { channels, outboxes: ages, sweep: counters::read(db, SWEEP)? })
}

/// When the oldest event of `source` whose email is not out yet happened:
/// the first one past the cursor (not read yet), or an earlier one whose
/// delivery is still pending. Promotions aside: they go out paced, a batch
/// a second, so a large one waits by design (found in review: every
/// promotion to more than a few thousand customers set off the
/// half-hour alert).
fn oldest_undelivered(db: &dyn Db, source: &str, outbox: &dyn Db) -> Result<Option<String>, DbError> {
    let unread = match outbox.query("SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT 1", &[cursor(db, source)?.into()]) {
        Ok(rows) => rows.first().map(|r| r.int("id")).transpose()?,
        Err(e) if outbox_absent(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let pending = db
        .query(
            "SELECT MIN(source_id) AS id FROM deliveries WHERE status IN ('pending', 'sending') AND source = ? AND event_type <> ?",
            &[source.into(), crate::deliveries::PROMOTION.into()],
        )?
        .first()
        .map(|r| r.opt_int("id"))
        .transpose()?
        .flatten();
    let Some(id) = [unread, pending].into_iter().flatten().min() else { return Ok(None) };
    outbox.query("SELECT occurred_at FROM outbox WHERE id = ?", &[id.into()])?.first().map(|r| r.text("occurred_at")).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliveries::advance;
    use storage::native::MemDb;

    use crate::test_support::setup;

    fn event(outbox: &MemDb, at: i64) {
        outbox
            .execute("INSERT INTO outbox (event_type, aggregate_id, payload, occurred_at) VALUES ('order.paid', 'o', '{}', ?)", &[clock::format_rfc3339(at).into()])
            .unwrap();
    }

    fn delivery(db: &MemDb, source_id: i64, status: &str) {
        db.execute(
            "INSERT INTO deliveries (source, source_id, event_type, idempotency_key, recipient, subject, html, text, status, next_attempt_at, created_at, updated_at) \
             VALUES ('orders', ?, 'order.paid', ?, 'a@example.com', 's', 'h', 't', ?, 0, 't', 't')",
            &[source_id.into(), format!("k{source_id}").into(), status.into()],
        )
        .unwrap();
    }

    #[test]
    fn counts_deliveries_and_ages_the_oldest_undelivered_event() {
        let (db, outbox) = setup();
        let empty = MemDb::new();
        for at in [1000, 1100, 1200, 1300] {
            event(&outbox, at);
        }
        // Events 1-3 read; 1 sent, 2 still pending, 3 failed; 4 not read yet.
        advance(&db, "orders", 3).unwrap();
        delivery(&db, 1, "sent");
        delivery(&db, 2, "pending");
        delivery(&db, 3, "failed");
        counters::bump(&db, SWEEP, 1250).unwrap();
        let f = notification_figures(&db, &[("orders", &outbox as &dyn Db), ("users", &empty as &dyn Db)], 1500).unwrap();
        let per_channel = |f: &NotificationFigures| f.channels.iter().map(|c| (c.channel.clone(), c.pending, c.failed)).collect::<Vec<_>>();
        assert_eq!(per_channel(&f), vec![("email".to_string(), 1, 1), ("sms".to_string(), 0, 0)]);
        // Failed on purpose (consent withdrawn, the account deleted): no failure.
        for (id, error) in [(10, "not sent: the customer withdrew consent to promotions"), (11, "the recipient deleted their account")] {
            delivery(&db, id, "failed");
            db.execute("UPDATE deliveries SET last_error = ? WHERE source_id = ?", &[error.into(), id.into()]).unwrap();
        }
        delivery(&db, 12, "failed");
        db.execute("UPDATE deliveries SET channel = 'sms', last_error = '400 Twilio error 21211' WHERE source_id = 12", &[]).unwrap();
        let f2 = notification_figures(&db, &[("users", &empty as &dyn Db)], 1500).unwrap();
        assert_eq!(per_channel(&f2), vec![("email".to_string(), 1, 1), ("sms".to_string(), 0, 1)]);
        db.execute("DELETE FROM deliveries WHERE source_id >= 10", &[]).unwrap();
        // The users source has no outbox table yet: nothing waits.
        assert_eq!(f.outboxes, vec![("orders".to_string(), 400), ("users".to_string(), 0)]);
        assert_eq!(f.sweep, Counter { value: 1, updated_at: 1250 });

        // Once event 2 is out, the oldest waiting is 4, not read yet.
        db.execute("UPDATE deliveries SET status = 'sent' WHERE source_id = 2", &[]).unwrap();
        assert_eq!(notification_figures(&db, &[("orders", &outbox as &dyn Db)], 1500).unwrap().outboxes, vec![("orders".to_string(), 200)]);
        advance(&db, "orders", 4).unwrap();
        assert_eq!(notification_figures(&db, &[("orders", &outbox as &dyn Db)], 1500).unwrap().outboxes, vec![("orders".to_string(), 0)]);

        // A promotion waiting for its paced batch is no lag.
        db.execute("UPDATE deliveries SET status = 'pending', event_type = 'promotion.send' WHERE source_id = 1", &[]).unwrap();
        assert_eq!(notification_figures(&db, &[("orders", &outbox as &dyn Db)], 1500).unwrap().outboxes, vec![("orders".to_string(), 0)]);
    }
}
