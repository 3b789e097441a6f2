//! The notifications service, minus its HTTP entry point: email templates
//! and rendering, the delivery pipeline (outbox → deliveries → Resend or
//! the local mail log; SMS to Twilio or the same log) and the Resend and
//! Twilio clients. The HTTP component
//! (`components/notifications/http`) is a thin adapter; the readiness check
//! uses the schema.

pub mod deliveries;
pub mod events;
pub mod metrics;
pub mod privacy;
pub mod promotions;
pub mod resend;
pub mod schema;
pub mod settings;
pub mod sms;
pub mod templates;
pub mod twilio;

/// What the unit tests of several modules start from.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::deliveries::Delivery;
    use storage::native::MemDb;
    use storage::Db;

    /// A notifications database with its schema, and an empty outbox of
    /// the shape the services write.
    pub fn setup() -> (MemDb, MemDb) {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let outbox = MemDb::new();
        outbox
            .execute(
                "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event_type TEXT, aggregate_id TEXT, payload TEXT, occurred_at TEXT, \
                 traceparent TEXT, tracestate TEXT)",
                &[],
            )
            .unwrap();
        (db, outbox)
    }

    /// An SMS of `text` to `to`, claimed for its first attempt (for no
    /// account: set `user_id` for one).
    pub fn claimed_sms(to: &str, text: &str) -> Delivery {
        Delivery {
            id: 1,
            channel: "sms".into(),
            event_type: "order.shipped".into(),
            idempotency_key: "sms/order.shipped/o1".into(),
            recipient: to.into(),
            user_id: None,
            subject: "SMS".into(),
            html: None,
            text: Some(text.into()),
            status: "sending".into(),
            attempts: 1,
            next_attempt_at: 0,
            last_error: None,
            provider_id: None,
            headers: None,
            trace: Default::default(),
            batch_key: None,
            created_at: "t".into(),
            updated_at: "t".into(),
        }
    }
}
