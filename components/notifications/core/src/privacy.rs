//! One account's message log (the emails and SMS made for it), for export
//! and erasure (the users service asks through the
//! `shop:notifications/privacy` contract).
//!
//! A delivery is an account's when it was made for that account
//! (`deliveries.user_id`, see `deliveries::Recipient`), whatever address it
//! went to. Deliveries made before deliveries named their account have none:
//! such an email is the account's when it went to the account's address (an
//! address belongs to one account at a time, and a deleted account's
//! deliveries lose theirs), but such an SMS is left out. A phone number is
//! neither verified nor unique, so the number alone does not say whose an
//! SMS was: listing or erasing those by number would hand one customer's
//! SMS to, or erase them for, whoever entered the same number.

use crate::deliveries::REMOVED;
use serde_json::{json, Value as Json};
use std::collections::BTreeSet;
use storage::{transaction, Db, DbError};

/// False for the address a deleted account is left with
/// (`deleted+<id>@erased.invalid`): nothing is ever sent there.
pub fn deliverable(email: &str) -> bool {
    !email.ends_with("@erased.invalid")
}

/// What an erased delivery's recipient becomes.
pub const ERASED_RECIPIENT: &str = "[erased]";

/// The deliveries of an account, given its id and then its email address
/// (see the module's documentation), as a SQL condition.
const OF_THE_ACCOUNT: &str = "(user_id = ? OR (user_id IS NULL AND channel = 'email' AND recipient = ?))";

/// An account's message log: two JSON arrays, oldest first, of event type,
/// subject (an SMS's label), status and dates (bodies are not part of the
/// log a customer gets back: they are the shop's renderings of the same
/// events).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageLog {
    pub emails: Json,
    pub sms: Json,
}

/// The emails and SMS of the account `user_id`, whose address is `email`.
pub fn export_user(db: &dyn Db, user_id: &str, email: &str) -> Result<MessageLog, DbError> {
    let rows = db.query(
        &format!("SELECT channel, event_type, subject, status, created_at, updated_at FROM deliveries WHERE {OF_THE_ACCOUNT} ORDER BY id"),
        &[user_id.into(), email.into()],
    )?;
    let (mut emails, mut sms) = (Vec::new(), Vec::new());
    for r in rows.iter() {
        let entry = json!({
            "event_type": r.text("event_type")?,
            "subject": r.text("subject")?,
            "status": r.text("status")?,
            "created_at": r.text("created_at")?,
            "updated_at": r.text("updated_at")?,
        });
        match r.text("channel")?.as_str() {
            "sms" => sms.push(entry),
            _ => emails.push(entry),
        }
    }
    Ok(MessageLog { emails: Json::Array(emails), sms: Json::Array(sms) })
}

/// Erase the account `user_id` (address `email`) from the log: recipient,
/// subject, body and the account go, so an erased delivery is nobody's;
/// event type, status and dates stay. A delivery not yet sent is failed
/// instead of being sent to nobody. Returns how many deliveries it erased
/// (none the second time).
///
/// With `for_good` (the account itself is erased by now) the account is
/// recorded as erased, and a pull makes no delivery for an erased account
/// ([`erased_among`]), so an email or SMS rendered for it while it was
/// being deleted is not stored after this. The two serialise on the
/// message log's lock ([`lock_log`]): a pull's deliveries are either stored
/// first, and erased here, or checked after this commits. Without it (the
/// erasure's first pass, before the account goes) nothing is recorded:
/// found in review, a deletion that failed after the first pass left a
/// live account that never got another email.
pub fn erase_user(db: &dyn Db, user_id: &str, email: &str, now: &str, for_good: bool) -> Result<u32, DbError> {
    transaction(db, |tx| {
        lock_log(tx)?;
        erase_in(tx, user_id, email, now, for_good)
    })
}

/// [`erase_user`]'s work, in the caller's transaction after [`lock_log`].
/// Also what a pull does with the users service's `user.deleted` event
/// (`email` unknown there: ""), so an account erased is recorded as such
/// even when the deletion's own last call here failed (found in review:
/// nothing made up for it).
pub fn erase_in(tx: &dyn Db, user_id: &str, email: &str, now: &str, for_good: bool) -> Result<u32, DbError> {
    if for_good {
        tx.execute(
            "INSERT INTO erased_accounts (user_id, erased_at) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
            &[user_id.into(), now.into()],
        )?;
    }
    let rows = tx.query(
        &format!(
            "UPDATE deliveries SET recipient = ?, user_id = NULL, subject = ?, html = ?, text = ?, headers = NULL, updated_at = ?, \
             status = CASE WHEN status IN ('pending', 'sending') THEN 'failed' ELSE status END, \
             last_error = CASE WHEN status IN ('pending', 'sending') THEN 'the recipient deleted their account' \
                               WHEN last_error IS NULL THEN NULL \
                               WHEN last_error LIKE 'not sent: %' THEN last_error \
                               ELSE 'not kept: the recipient deleted their account' END \
             WHERE {OF_THE_ACCOUNT} RETURNING id"
        ),
        &[ERASED_RECIPIENT.into(), REMOVED.into(), REMOVED.into(), REMOVED.into(), now.into(), user_id.into(), email.into()],
    )?;
    Ok(rows.len() as u32)
}

/// The advisory lock key of the message log (any constant the app uses for nothing else).
const LOG_LOCK: i64 = 0x7368_6f70_6c6f_6773; // "shoplogs"

/// Take the message log's lock for the rest of the caller's transaction:
/// an erasure and the storing of a pull's deliveries take it first, so they
/// never overlap. On SQLite the write transaction already excludes the
/// other: nothing to do.
pub fn lock_log(tx: &dyn Db) -> Result<(), DbError> {
    storage::advisory_lock(tx, LOG_LOCK)
}

/// Which of these accounts were erased ([`erase_user`]): no delivery is
/// made for them. In the transaction that stores deliveries, after
/// [`lock_log`].
pub fn erased_among(tx: &dyn Db, user_ids: &[&str]) -> Result<BTreeSet<String>, DbError> {
    if user_ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let marks = vec!["?"; user_ids.len()].join(", ");
    let params: Vec<storage::Value> = user_ids.iter().map(|u| (*u).into()).collect();
    tx.query(&format!("SELECT user_id FROM erased_accounts WHERE user_id IN ({marks})"), &params)?
        .iter()
        .map(|r| r.text("user_id"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    const PHONE: &str = "+442079460958";

    /// A delivery on `channel` to `to`, for the account `user_id` (none: made
    /// before deliveries named their account).
    fn deliver(db: &MemDb, channel: &str, to: &str, user_id: Option<&str>, status: &str) {
        let n = db.query("SELECT COUNT(*) AS n FROM deliveries", &[]).unwrap().first().unwrap().int("n").unwrap();
        db.execute(
            "INSERT INTO deliveries (source, source_id, channel, event_type, idempotency_key, recipient, user_id, subject, html, text, status, next_attempt_at, created_at, updated_at) \
             VALUES ('orders', ?, ?, 'order.shipped', ?, ?, ?, 'Shipped for Ann', '', 'Ann, your order has shipped', ?, 0, 't', 't')",
            &[n.into(), channel.into(), format!("k{n}").into(), to.into(), user_id.into(), status.into()],
        )
        .unwrap();
    }

    fn migrated() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        db
    }

    /// How many emails and SMS the account's export lists.
    fn counts(log: &MessageLog) -> (usize, usize) {
        (log.emails.as_array().unwrap().len(), log.sms.as_array().unwrap().len())
    }

    fn rows(db: &MemDb) -> Vec<String> {
        let all = db.query("SELECT recipient, COALESCE(user_id, '-') AS user_id, channel, text, status FROM deliveries ORDER BY id", &[]).unwrap();
        all.iter()
            .map(|r| ["recipient", "user_id", "channel", "text", "status"].map(|c| r.text(c).unwrap()).join("|"))
            .collect()
    }

    /// Found in review: the deletion's first pass recorded the account as
    /// erased, so a deletion that failed after it (the cart busy, a
    /// database down) left a live account that never got another email.
    #[test]
    fn only_the_last_pass_records_the_account_as_erased() {
        let db = migrated();
        deliver(&db, "email", "ann@b.co", Some("u-ann"), "pending");
        // A promotion's headers carry the account's signed unsubscribe link.
        db.execute("UPDATE deliveries SET headers = '{\"List-Unsubscribe\":\"<https://x/?user=u-ann>\"}'", &[]).unwrap();
        let erased = |db: &storage::native::MemDb| db.query("SELECT COUNT(*) AS n FROM erased_accounts", &[]).unwrap().first().unwrap().int("n").unwrap();
        assert_eq!(erase_user(&db, "u-ann", "ann@b.co", "t1", false).unwrap(), 1, "its queued email goes");
        assert_eq!(erased(&db), 0, "the account may still be live");
        let headers = db.query("SELECT headers FROM deliveries", &[]).unwrap().first().unwrap().opt_text("headers").unwrap();
        assert_eq!(headers, None, "the unsubscribe link names the account: it goes too");
        assert_eq!(erase_user(&db, "u-ann", "ann@b.co", "t2", true).unwrap(), 0);
        assert_eq!(erased(&db), 1);
    }

    #[test]
    fn an_account_is_exported_then_erased() {
        let db = migrated();
        deliver(&db, "email", "ann@b.co", Some("u-ann"), "sent");
        deliver(&db, "email", "ann@b.co", None, "pending");
        deliver(&db, "sms", PHONE, Some("u-ann"), "sent");
        deliver(&db, "email", "bob@b.co", Some("u-bob"), "sent");
        let log = export_user(&db, "u-ann", "ann@b.co").unwrap();
        assert_eq!(counts(&log), (2, 1), "{log:?}");
        assert_eq!(log.emails[0]["subject"], "Shipped for Ann");
        assert_eq!(erase_user(&db, "u-ann", "ann@b.co", "t2", true).unwrap(), 3);
        assert_eq!(export_user(&db, "u-ann", "ann@b.co").unwrap(), MessageLog { emails: json!([]), sms: json!([]) });
        assert_eq!(erase_user(&db, "u-ann", "ann@b.co", "t3", true).unwrap(), 0, "erased once");
        let all = rows(&db);
        assert!(all[0].starts_with("[erased]|-|email|") && all[0].ends_with("|sent"), "{all:?}");
        assert!(all[1].ends_with("|failed"), "an unsent one is not sent: {all:?}");
        assert!(all[2].starts_with("[erased]|-|sms|"), "{all:?}");
        assert!(all[3].starts_with("bob@b.co|u-bob|"), "others untouched");
        assert!(all[..3].iter().all(|r| !r.contains("Ann")), "{all:?}");
    }

    /// Found in review: a failed SMS kept Twilio's message, which can quote
    /// the number ("The 'To' number +44… is not a valid phone number"),
    /// after the account was erased.
    #[test]
    fn an_erased_delivery_keeps_no_provider_message() {
        let db = migrated();
        deliver(&db, "sms", PHONE, Some("u-ann"), "failed");
        db.execute("UPDATE deliveries SET last_error = ?", &[format!("400 The 'To' number {PHONE} is not a valid phone number.").into()]).unwrap();
        deliver(&db, "sms", PHONE, Some("u-ann"), "sent");
        // Left unsent on purpose (the shop's own words, no personal data):
        // kept so, and no failure for the metrics after the erasure either.
        deliver(&db, "sms", PHONE, Some("u-ann"), "failed");
        let withdrawn = "not sent: the customer withdrew SMS consent (or the number) since the event";
        db.execute("UPDATE deliveries SET last_error = ? WHERE id = 3", &[withdrawn.into()]).unwrap();
        erase_user(&db, "u-ann", "ann@b.co", "t2", true).unwrap();
        let errors: Vec<Option<String>> = db.query("SELECT last_error FROM deliveries ORDER BY id", &[]).unwrap().iter().map(|r| r.opt_text("last_error").unwrap()).collect();
        assert_eq!(errors, [Some("not kept: the recipient deleted their account".to_string()), None, Some(withdrawn.to_string())]);
    }

    #[test]
    fn sms_are_an_accounts_by_whom_they_were_for_never_by_the_number() {
        let db = migrated();
        // Mallory entered Ann's number on her own account.
        deliver(&db, "sms", PHONE, Some("u-ann"), "sent");
        deliver(&db, "sms", PHONE, Some("u-ann"), "pending");
        deliver(&db, "sms", PHONE, Some("u-mallory"), "sent");
        deliver(&db, "sms", PHONE, None, "sent");
        let mallory = export_user(&db, "u-mallory", "mallory@b.co").unwrap();
        assert_eq!(counts(&mallory), (0, 1), "only the SMS made for her: {mallory:?}");
        assert_eq!(erase_user(&db, "u-mallory", "mallory@b.co", "t2", true).unwrap(), 1);
        let all = rows(&db);
        assert!(all[0].starts_with(&format!("{PHONE}|u-ann|sms|")) && all[0].ends_with("|sent"), "{all:?}");
        assert!(all[1].starts_with(&format!("{PHONE}|u-ann|sms|")) && all[1].ends_with("|pending"), "Ann's queued SMS still goes: {all:?}");
        assert!(all[2].starts_with("[erased]|-|sms|"), "{all:?}");
        // An SMS made before deliveries named their account is nobody's here.
        assert_eq!(counts(&export_user(&db, "u-ann", "ann@b.co").unwrap()), (0, 2));
        assert_eq!(erase_user(&db, "u-ann", "ann@b.co", "t3", true).unwrap(), 2);
        assert!(rows(&db)[3].starts_with(&format!("{PHONE}|-|sms|")), "{:?}", rows(&db));
    }

    #[test]
    fn an_address_finds_only_emails_that_named_no_account() {
        let db = migrated();
        // An email made for another account is not this one's, even to the
        // same address (should an address ever pass from one to another).
        deliver(&db, "email", "ann@b.co", Some("u-old"), "sent");
        deliver(&db, "email", "ann@b.co", Some("u-new"), "sent");
        let log = export_user(&db, "u-new", "ann@b.co").unwrap();
        assert_eq!(counts(&log), (1, 0));
        assert_eq!(erase_user(&db, "u-new", "ann@b.co", "t2", true).unwrap(), 1);
        assert!(rows(&db)[0].starts_with("ann@b.co|u-old|"), "{:?}", rows(&db));
    }
}
