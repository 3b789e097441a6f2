//! One address's email log, for export and erasure (the users service asks
//! through the `shop:notifications/privacy` contract).

use crate::deliveries::REMOVED;
use serde_json::{json, Value as Json};
use storage::{Db, DbError};

/// False for the address a deleted account is left with
/// (`deleted+<id>@erased.invalid`): nothing is ever sent there.
pub fn deliverable(email: &str) -> bool {
    !email.ends_with("@erased.invalid")
}

/// What an erased delivery's recipient becomes.
pub const ERASED_RECIPIENT: &str = "[erased]";

/// The emails sent (or queued) to `email`, oldest first: event type,
/// subject, status and dates (bodies are not part of the log a customer
/// gets back: they are the shop's renderings of the same events).
pub fn export_recipient(db: &dyn Db, email: &str) -> Result<Json, DbError> {
    let rows = db.query(
        "SELECT event_type, subject, status, created_at, updated_at FROM deliveries WHERE recipient = ? ORDER BY id",
        &[email.into()],
    )?;
    rows.iter()
        .map(|r| {
            Ok(json!({
                "event_type": r.text("event_type")?,
                "subject": r.text("subject")?,
                "status": r.text("status")?,
                "created_at": r.text("created_at")?,
                "updated_at": r.text("updated_at")?,
            }))
        })
        .collect::<Result<Vec<_>, DbError>>()
        .map(Json::Array)
}

/// Erase `email` from the log: recipient, subject and body go; event type,
/// status and dates stay. A delivery not yet sent is failed instead of
/// being sent to nobody. Returns how many deliveries it touched.
pub fn erase_recipient(db: &dyn Db, email: &str, now: &str) -> Result<u32, DbError> {
    let rows = db.query(
        "UPDATE deliveries SET recipient = ?, subject = ?, html = ?, text = ?, updated_at = ?, \
         status = CASE WHEN status IN ('pending', 'sending') THEN 'failed' ELSE status END, \
         last_error = CASE WHEN status IN ('pending', 'sending') THEN 'the recipient deleted their account' ELSE last_error END \
         WHERE recipient = ? RETURNING id",
        &[ERASED_RECIPIENT.into(), REMOVED.into(), REMOVED.into(), REMOVED.into(), now.into(), email.into()],
    )?;
    Ok(rows.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    #[test]
    fn a_recipient_is_exported_then_erased() {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        for (i, (to, status)) in [("ann@b.co", "sent"), ("ann@b.co", "pending"), ("bob@b.co", "sent")].iter().enumerate() {
            db.execute(
                "INSERT INTO deliveries (source, source_id, event_type, idempotency_key, recipient, subject, html, text, status, next_attempt_at, created_at, updated_at) \
                 VALUES ('users', ?, 'user.registered', ?, ?, 'Welcome Ann', '<p>Ann</p>', 'Ann', ?, 0, 't', 't')",
                &[(i as i64).into(), format!("k{i}").into(), (*to).into(), (*status).into()],
            )
            .unwrap();
        }
        let log = export_recipient(&db, "ann@b.co").unwrap();
        assert_eq!(log.as_array().unwrap().len(), 2);
        assert_eq!(log[0]["subject"], "Welcome Ann");
        assert_eq!(erase_recipient(&db, "ann@b.co", "t2").unwrap(), 2);
        assert_eq!(export_recipient(&db, "ann@b.co").unwrap(), json!([]));
        let left = db.query("SELECT recipient, subject, text, status FROM deliveries ORDER BY id", &[]).unwrap();
        let all: Vec<String> = left.iter().map(|r| format!("{}|{}|{}|{}", r.text("recipient").unwrap(), r.text("subject").unwrap(), r.text("text").unwrap(), r.text("status").unwrap())).collect();
        assert!(all[0].starts_with("[erased]|") && all[0].ends_with("|sent"), "{all:?}");
        assert!(all[1].ends_with("|failed"), "an unsent one is not sent: {all:?}");
        assert!(all[2].starts_with("bob@b.co|"), "others untouched");
        assert!(!all[0].contains("Ann") && !all[1].contains("Ann"));
    }
}
