//! Idempotency-Key generations: what the shop sends to Stripe as the key of
//! a call it may retry.
//!
//! Each call the shop may repeat has a logical key (`payment-intent:<order>`,
//! `checkout-session:<order>:<expiry>`, `refund:<order>:<key>`,
//! `auto-refund:<intent>`, `expire:<session>`, `cancel:<intent>`). Stripe
//! keeps the first answer to a key once its endpoint has begun, 500s
//! included, and replays it for 24 hours; so after Stripe *answered* a 5xx
//! the same key would fail for a day. The key then moves to its next
//! generation, and the next attempt sends `<logical>#<generation>`. No
//! answer at all (a timeout, a network error) keeps the generation: the
//! request may have run, and the same key is how to get its result.
//!
//! Generation 1 has no row and is the logical key itself. A new generation
//! is a new request at Stripe, so whatever the failed one may have made is
//! not returned by it: that is harmless for Checkout Sessions and
//! PaymentIntents (never shown to anyone, they cannot be paid; see README,
//! "Faults"), and refunds look for one first (`refunds`).

use crate::stripe::{stripe_idempotency_key, StripeConfig, StripeError};
use serde_json::{json, Value as Json};
use storage::{Db, DbError};

/// A logical key at its current generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeKey {
    pub logical: String,
    pub generation: i64,
}

impl StripeKey {
    /// The key's current generation, as recorded.
    pub fn load(db: &dyn Db, logical: &str) -> Result<StripeKey, DbError> {
        let generation = db
            .query("SELECT generation FROM stripe_key_generations WHERE key = ?", &[logical.into()])?
            .first()
            .map(|r| r.int("generation"))
            .transpose()?
            .unwrap_or(1);
        Ok(StripeKey { logical: logical.to_string(), generation })
    }

    /// What an earlier generation of this key may have left at Stripe: it
    /// is not the first, so a 5xx answered an earlier attempt.
    pub fn after_a_failure(&self) -> bool {
        self.generation > 1
    }

    /// The Idempotency-Key sent to Stripe (within Stripe's 255 characters).
    pub fn sent(&self) -> String {
        if self.generation <= 1 {
            stripe_idempotency_key(&self.logical)
        } else {
            stripe_idempotency_key(&format!("{}#{}", self.logical, self.generation))
        }
    }

    /// The same for every generation: what a refund carries in its
    /// `metadata[shop_idempotency_key]`, so that any attempt finds it.
    pub fn marker(&self) -> String {
        stripe_idempotency_key(&self.logical)
    }

    /// Move the key past this generation, unless another attempt already
    /// did (two attempts that both got a 5xx under one generation move it
    /// once).
    pub fn advance(&self, db: &dyn Db) -> Result<(), DbError> {
        db.execute(
            "INSERT INTO stripe_key_generations (key, generation, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET generation = excluded.generation, updated_at = excluded.updated_at \
             WHERE stripe_key_generations.generation < excluded.generation",
            &[self.logical.as_str().into(), (self.generation + 1).into(), clock::now_rfc3339().into()],
        )?;
        Ok(())
    }

    /// `POST` under this key. A 5xx from Stripe moves the key on for the
    /// next attempt (best effort: when that cannot be recorded now, the
    /// next attempt gets the same 5xx replayed and tries again).
    pub fn post(&self, db: &dyn Db, stripe: &StripeConfig, path: &str, fields: &[(String, String)]) -> Result<Json, StripeError> {
        let answer = stripe.post(path, fields, &self.sent());
        if let Err(StripeError::ServerError { status }) = &answer {
            if let Err(e) = self.advance(db) {
                println!("{}", json!({ "level": "warn", "service": "payments", "stripe_key": self.logical, "stripe_status": status, "key_generation_not_advanced": e.to_string() }));
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    fn db() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, orders_core::schema::MIGRATIONS).unwrap();
        db
    }

    #[test]
    fn a_key_starts_as_itself_and_each_failure_moves_it_once() {
        let db = db();
        let first = StripeKey::load(&db, "payment-intent:o1").unwrap();
        assert_eq!((first.generation, first.sent(), first.after_a_failure()), (1, "payment-intent:o1".to_string(), false));
        first.advance(&db).unwrap();
        // A second attempt that failed under the same generation moves it no further.
        first.advance(&db).unwrap();
        let second = StripeKey::load(&db, "payment-intent:o1").unwrap();
        assert_eq!((second.generation, second.sent(), second.after_a_failure()), (2, "payment-intent:o1#2".to_string(), true));
        assert_eq!(second.marker(), first.marker(), "one marker for every generation");
        second.advance(&db).unwrap();
        assert_eq!(StripeKey::load(&db, "payment-intent:o1").unwrap().sent(), "payment-intent:o1#3");
        assert_eq!(StripeKey::load(&db, "payment-intent:o2").unwrap().generation, 1, "keys are independent");
    }

    #[test]
    fn long_keys_still_fit_stripes_limit() {
        let logical = format!("refund:o1:{}", "k".repeat(255));
        let key = StripeKey { logical: logical.clone(), generation: 2 };
        assert!(key.sent().len() <= 255 && key.marker().len() <= 255);
        assert_ne!(key.sent(), key.marker());
    }

    #[test]
    fn advancing_is_one_statement_on_postgres() {
        let db = storage::native::Recorder::postgres();
        StripeKey { logical: "k".into(), generation: 1 }.advance(&db).unwrap();
        assert!(db.statements()[0].contains("ON CONFLICT (key) DO UPDATE"), "{:?}", db.statements());
    }
}
