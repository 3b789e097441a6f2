//! SMS texts for the order events customers want on their phone: shipped,
//! cancelled, refunded (and a payment returned automatically). Plain text,
//! short (one or two SMS segments), no links. Sent only to a phone number
//! whose owner consented to SMS (the users service records when): read from
//! the users database when the event is picked up, and again just before
//! each attempt.

use crate::deliveries::Delivery;
use crate::templates::money_text;
use serde_json::Value as Json;
use storage::{Db, DbError};

/// Longest SMS body we send, in characters: Twilio accepts 1600 and splits
/// it into segments; ours stay within two.
pub const MAX_CHARS: usize = 306;

/// A rendered SMS: a short label for the admin listing and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub label: String,
    pub body: String,
}

/// The SMS for an event, or `None` for events that send none.
pub fn render(event_type: &str, payload: &Json, store_name: &str) -> Option<Sms> {
    let order = &payload["order"];
    let id = payload["order_id"].as_str().unwrap_or("");
    // The first block of the UUID is enough to recognise an order in a text.
    let short = id.split('-').next().unwrap_or(id);
    let (label, body) = match event_type {
        "order.shipped" => {
            let tracking = match (order["tracking"]["carrier"].as_str(), order["tracking"]["number"].as_str()) {
                (Some(c), Some(n)) => format!(" Tracking: {c} {n}."),
                _ => String::new(),
            };
            ("Order shipped", format!("{store_name}: your order {short} has shipped.{tracking}"))
        }
        "order.cancelled" => ("Order cancelled", format!("{store_name}: your order {short} was cancelled. Any payment is refunded.")),
        "order.refunded" => (
            "Order refunded",
            format!("{store_name}: {} was refunded for your order {short}.", money_text(&order["refunded"])),
        ),
        "order.payment_returned" => (
            "Payment returned",
            format!("{store_name}: your payment of {} for order {short} was refunded.", money_text(&payload["amount"])),
        ),
        _ => return None,
    };
    Some(Sms { label: format!("SMS: {label}"), body: body.chars().take(MAX_CHARS).collect() })
}

/// The phone number of the account `user_id`, if it has one with SMS
/// consent and is not deleted: where its order SMS go.
pub fn consenting_phone(users: &dyn Db, user_id: &str) -> Result<Option<String>, DbError> {
    match users.query("SELECT phone FROM users WHERE id = ? AND sms_consent_at IS NOT NULL AND deleted_at IS NULL", &[user_id.into()]) {
        Ok(rows) => rows.first().map(|r| r.opt_text("phone")).transpose().map(Option::flatten),
        Err(e) if phones_unknown(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the SMS `d` may still go out, asked just before each attempt so
/// that withdrawing consent, changing the number or deleting the account
/// also stops SMS already queued: the account it is for still has its
/// number with consent and is not deleted. Another account with the same
/// number (numbers are neither verified nor unique) changes nothing. An SMS
/// made before deliveries named their account goes while some live account
/// has the number with consent.
pub fn still_consented(users: &dyn Db, d: &Delivery) -> Result<bool, DbError> {
    let found = match &d.user_id {
        Some(user_id) => users.query(
            "SELECT id FROM users WHERE id = ? AND phone = ? AND sms_consent_at IS NOT NULL AND deleted_at IS NULL",
            &[user_id.as_str().into(), d.recipient.as_str().into()],
        ),
        None => users.query(
            "SELECT id FROM users WHERE phone = ? AND sms_consent_at IS NOT NULL AND deleted_at IS NULL LIMIT 1",
            &[d.recipient.as_str().into()],
        ),
    };
    match found {
        Ok(rows) => Ok(!rows.is_empty()),
        Err(e) if phones_unknown(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `e` says the users database has no phone numbers yet (not yet
/// migrated to them): then nobody consents to SMS.
fn phones_unknown(e: &DbError) -> bool {
    matches!(e, DbError::Other(m) if m.contains("phone"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use storage::native::MemDb;

    fn order() -> Json {
        json!({
            "order_id": "5f1c0e7a-9b2d-4c3e-8f6a-1b2c3d4e5f60",
            "order": {
                "status": "shipped",
                "tracking": { "carrier": "DHL", "number": "JD0001" },
                "total": { "amount_minor": 2500, "currency": "USD" },
                "refunded": { "amount_minor": 1000, "currency": "USD" },
            },
            "amount": { "amount_minor": 4800, "currency": "JPY" },
        })
    }

    #[test]
    fn order_events_have_short_texts() {
        let s = render("order.shipped", &order(), "Shop").unwrap();
        assert_eq!(s.body, "Shop: your order 5f1c0e7a has shipped. Tracking: DHL JD0001.");
        assert_eq!(s.label, "SMS: Order shipped");
        assert_eq!(render("order.refunded", &order(), "Shop").unwrap().body, "Shop: 10.00 USD was refunded for your order 5f1c0e7a.");
        assert!(render("order.payment_returned", &order(), "Shop").unwrap().body.contains("4800 JPY"));
        assert!(render("order.cancelled", &order(), "Shop").unwrap().body.contains("cancelled"));
    }

    #[test]
    fn other_events_send_no_sms() {
        for kind in ["order.paid", "order.placed", "order.expired", "user.registered", "user.password_reset_requested"] {
            assert_eq!(render(kind, &order(), "Shop"), None, "{kind}");
        }
    }

    const PHONE: &str = "+442079460958";

    /// A users database of the shape the users service keeps: Ann consents
    /// with her number; Mallory entered the same one and consents too.
    fn users() -> MemDb {
        let db = MemDb::new();
        db.execute("CREATE TABLE users (id TEXT PRIMARY KEY, phone TEXT, sms_consent_at TEXT, deleted_at TEXT)", &[]).unwrap();
        for id in ["u-ann", "u-mallory"] {
            db.execute("INSERT INTO users (id, phone, sms_consent_at) VALUES (?, ?, 't')", &[id.into(), PHONE.into()]).unwrap();
        }
        db
    }

    /// A queued SMS to [`PHONE`] for `user_id`'s account.
    fn sms_for(user_id: Option<&str>) -> Delivery {
        Delivery { user_id: user_id.map(str::to_string), ..crate::test_support::claimed_sms(PHONE, "Shop: your order has shipped.") }
    }

    #[test]
    fn an_sms_goes_while_its_own_account_consents_with_that_number() {
        let users = users();
        assert_eq!(consenting_phone(&users, "u-ann").unwrap().as_deref(), Some(PHONE));
        assert!(still_consented(&users, &sms_for(Some("u-ann"))).unwrap());
        users.execute("UPDATE users SET sms_consent_at = NULL WHERE id = 'u-ann'", &[]).unwrap();
        assert_eq!(consenting_phone(&users, "u-ann").unwrap(), None);
        assert!(!still_consented(&users, &sms_for(Some("u-ann"))).unwrap(), "Mallory's consent to the same number is not Ann's");
        assert!(still_consented(&users, &sms_for(Some("u-mallory"))).unwrap());
        // An SMS made before deliveries named their account: anyone's consent.
        assert!(still_consented(&users, &sms_for(None)).unwrap());
    }

    #[test]
    fn a_new_number_or_a_deleted_account_stops_the_sms() {
        let users = users();
        users.execute("UPDATE users SET phone = '+14155550123' WHERE id = 'u-ann'", &[]).unwrap();
        assert!(!still_consented(&users, &sms_for(Some("u-ann"))).unwrap(), "queued for the old number");
        users.execute("UPDATE users SET phone = ?, deleted_at = 't' WHERE id = 'u-ann'", &[PHONE.into()]).unwrap();
        assert!(!still_consented(&users, &sms_for(Some("u-ann"))).unwrap());
        assert_eq!(consenting_phone(&users, "u-ann").unwrap(), None);
        users.execute("UPDATE users SET sms_consent_at = NULL WHERE id = 'u-mallory'", &[]).unwrap();
        assert!(!still_consented(&users, &sms_for(None)).unwrap(), "nobody consents with that number now");
    }

    #[test]
    fn a_users_database_without_phone_numbers_consents_to_nothing() {
        let users = MemDb::new();
        users.execute("CREATE TABLE users (id TEXT PRIMARY KEY, deleted_at TEXT)", &[]).unwrap();
        assert_eq!(consenting_phone(&users, "u-ann").unwrap(), None);
        assert!(!still_consented(&users, &sms_for(Some("u-ann"))).unwrap());
        assert!(!still_consented(&users, &sms_for(None)).unwrap());
    }

    #[test]
    fn texts_are_bounded() {
        let long_name = "S".repeat(500);
        assert_eq!(render("order.cancelled", &order(), &long_name).unwrap().body.chars().count(), MAX_CHARS);
    }
}
