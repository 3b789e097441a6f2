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

/// The `ops_counters` row of `POST /api/notifications/sweep`.
pub const SWEEP: &str = "sweep";

/// The only channel today: every delivery is an email.
pub const EMAIL: &str = "email";

/// What the notifications service reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationFigures {
    /// Email deliveries waiting for an attempt or being sent.
    pub pending: i64,
    /// Email deliveries given up for good.
    pub failed: i64,
    /// Per outbox (in the order given): the age in seconds of its oldest
    /// event whose email is not out yet, 0 when none waits.
    pub outboxes: Vec<(String, i64)>,
    pub sweep: Counter,
}

/// The figures at `now`, reading each `(name, outbox)` source.
pub fn notification_figures(db: &dyn Db, outboxes: &[(&str, &dyn Db)], now: i64) -> Result<NotificationFigures, DbError> {
    let mut pending = 0;
    let mut failed = 0;
    for row in db.query("SELECT status, COUNT(*) AS n FROM deliveries WHERE status IN ('pending', 'sending', 'failed') GROUP BY status", &[])?.iter() {
        match row.text("status")?.as_str() {
            "failed" => failed += row.int("n")?,
            _ => pending += row.int("n")?,
        }
    }
    let mut ages = Vec::new();
    for (name, outbox) in outboxes {
        let oldest = oldest_undelivered(db, name, *outbox)?;
        let age = oldest.and_then(|at| clock::parse_rfc3339(&at)).map(|at| (now - at).max(0)).unwrap_or(0);
        ages.push((name.to_string(), age));
    }
    Ok(NotificationFigures { pending, failed, outboxes: ages, sweep: counters::read(db, SWEEP)? })
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
        assert_eq!((f.pending, f.failed), (1, 1));
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
