//! Card disputes (chargebacks). A cardholder can dispute a payment with
//! their bank weeks after it; Stripe takes the money back at once (and
//! returns it if the shop wins) and tells the shop with `charge.dispute.*`
//! events. Each dispute is kept by Stripe's id with its status as last
//! told; a final status (`won`, `lost`, `warning_closed`) is never moved
//! back by an event that arrives late. While one of an order's disputes is
//! open, or once one is lost, the order cannot be fulfilled
//! ([`blocks_fulfilment`]): shipping goods whose money is being taken back
//! loses both. Only a dispute of the payment the order keeps counts so: one
//! of a payment the shop gives back (a second payment, one after the order
//! ended) takes nothing the order was paid with (found in review: a
//! customer who disputed the duplicate charge froze the paid order).

use serde::Serialize;
use storage::{Db, DbError};

/// What a `charge.dispute.*` event says of its dispute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Told {
    pub id: String,
    pub payment_intent: Option<String>,
    /// In the shop's minor units, with `currency` upper-case.
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
    pub status: String,
}

/// A dispute as kept: as last told, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dispute {
    #[serde(flatten)]
    pub told: Told,
    pub created_at: String,
    pub updated_at: String,
}

/// A status Stripe never moves a dispute out of.
pub fn is_final(status: &str) -> bool {
    matches!(status, "won" | "lost" | "warning_closed")
}

/// A dispute in this status stops the order's fulfilment: any status but
/// one the shop came out of whole (`won`, or an inquiry closed without a
/// dispute, `warning_closed`). Statuses Stripe may add later count as open.
pub fn blocks_fulfilment(status: &str) -> bool {
    !matches!(status, "won" | "warning_closed")
}

/// Record what Stripe says of a dispute of `order_id`, in the caller's
/// transaction (the order's row locked first, as every payment event
/// does). Returns the status it had before (`None`: new) when the stored
/// dispute changed, `Ok(None)` when nothing did (the same status again, or
/// a late event about a dispute already closed).
pub fn record(tx: &dyn Db, order_id: &str, told: &Told, now: &str) -> Result<Option<Option<String>>, DbError> {
    let before = tx.query("SELECT status FROM disputes WHERE id = ?", &[told.id.as_str().into()])?.first().map(|r| r.text("status")).transpose()?;
    match &before {
        None => {
            tx.execute(
                "INSERT INTO disputes (id, order_id, payment_intent, amount_minor, currency, reason, status, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    told.id.as_str().into(),
                    order_id.into(),
                    told.payment_intent.clone().into(),
                    told.amount_minor.into(),
                    told.currency.as_str().into(),
                    told.reason.as_str().into(),
                    told.status.as_str().into(),
                    now.into(),
                    now.into(),
                ],
            )?;
        }
        Some(status) if *status == told.status || (is_final(status) && !is_final(&told.status)) => return Ok(None),
        Some(_) => {
            tx.execute(
                "UPDATE disputes SET status = ?, amount_minor = ?, reason = ?, updated_at = ? WHERE id = ?",
                &[told.status.as_str().into(), told.amount_minor.into(), told.reason.as_str().into(), now.into(), told.id.as_str().into()],
            )?;
        }
    }
    Ok(Some(before))
}

/// The order's disputes, oldest first.
pub fn of_order(db: &dyn Db, order_id: &str) -> Result<Vec<Dispute>, DbError> {
    db.query("SELECT * FROM disputes WHERE order_id = ? ORDER BY created_at, id", &[order_id.into()])?
        .iter()
        .map(|r| {
            Ok(Dispute {
                told: Told {
                    id: r.text("id")?,
                    payment_intent: r.opt_text("payment_intent")?,
                    amount_minor: r.int("amount_minor")?,
                    currency: r.text("currency")?,
                    reason: r.text("reason")?,
                    status: r.text("status")?,
                },
                created_at: r.text("created_at")?,
                updated_at: r.text("updated_at")?,
            })
        })
        .collect()
}

/// The PaymentIntent whose money the order keeps (`payments.payment_intent`,
/// the one that paid it), if one is known.
fn kept_intent(db: &dyn Db, order_id: &str) -> Result<Option<String>, DbError> {
    Ok(db.query("SELECT payment_intent FROM payments WHERE order_id = ?", &[order_id.into()])?.first().map(|r| r.opt_text("payment_intent")).transpose()?.flatten())
}

/// Whether a dispute of `intent` concerns the payment the order keeps
/// (`kept`): the same intent, or either one unknown (counted, to be safe).
fn of_kept(intent: Option<&str>, kept: Option<&str>) -> bool {
    match (intent, kept) {
        (Some(disputed), Some(kept)) => disputed == kept,
        _ => true,
    }
}

/// Whether this dispute concerns the payment the order keeps.
pub fn concerns_kept_payment(db: &dyn Db, order_id: &str, told: &Told) -> Result<bool, DbError> {
    Ok(of_kept(told.payment_intent.as_deref(), kept_intent(db, order_id)?.as_deref()))
}

/// The order's disputes, split: those of the payment it keeps, and those of
/// payments it gives back.
fn split(db: &dyn Db, order_id: &str) -> Result<(Vec<Dispute>, Vec<Dispute>), DbError> {
    let kept = kept_intent(db, order_id)?;
    Ok(of_order(db, order_id)?.into_iter().partition(|d| of_kept(d.told.payment_intent.as_deref(), kept.as_deref())))
}

/// Whether a dispute of the order stops its fulfilment now.
pub fn block_fulfilment(db: &dyn Db, order_id: &str) -> Result<bool, DbError> {
    Ok(split(db, order_id)?.0.iter().any(|d| blocks_fulfilment(&d.told.status)))
}

/// Whether one of the order's disputes of the payment it keeps is still open.
pub fn any_open(db: &dyn Db, order_id: &str) -> Result<bool, DbError> {
    Ok(split(db, order_id)?.0.iter().any(|d| !is_final(&d.told.status)))
}

/// Whether one of the order's disputes of a payment it gives back is open
/// (an admin answers it at Stripe with the refund) or was lost (the money
/// may have gone back twice); fulfilment goes on either way.
pub fn any_unsettled_of_returned(db: &dyn Db, order_id: &str) -> Result<bool, DbError> {
    Ok(split(db, order_id)?.1.iter().any(|d| blocks_fulfilment(&d.told.status)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::native::MemDb;

    fn db() -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        db.execute(
            "INSERT INTO orders (id, user_id, status, currency, subtotal_minor, total_minor, refunded_minor, flags, expires_at, created_at, updated_at) \
             VALUES ('o1', 'u1', 'paid', 'USD', 1000, 1000, 0, '[]', 0, 't', 't')",
            &[],
        )
        .unwrap();
        db
    }

    fn told(status: &str) -> Told {
        Told { id: "dp_1".into(), payment_intent: Some("pi_1".into()), amount_minor: 1000, currency: "USD".into(), reason: "fraudulent".into(), status: status.into() }
    }

    #[test]
    fn a_closed_dispute_is_not_opened_again_by_a_late_event() {
        let db = db();
        assert_eq!(record(&db, "o1", &told("needs_response"), "t1").unwrap(), Some(None));
        assert!(block_fulfilment(&db, "o1").unwrap() && any_open(&db, "o1").unwrap());
        assert_eq!(record(&db, "o1", &told("needs_response"), "t2").unwrap(), None, "the same again");
        assert_eq!(record(&db, "o1", &told("won"), "t3").unwrap(), Some(Some("needs_response".into())));
        assert_eq!(record(&db, "o1", &told("under_review"), "t4").unwrap(), None, "late");
        assert!(!block_fulfilment(&db, "o1").unwrap() && !any_open(&db, "o1").unwrap());
        assert_eq!(of_order(&db, "o1").unwrap()[0].told.status, "won");
    }

    /// A dispute of a second payment, which the shop gives back, leaves
    /// the order that the first paid to be fulfilled.
    #[test]
    fn only_a_dispute_of_the_payment_kept_blocks_fulfilment() {
        let db = db();
        db.execute("INSERT INTO payments (order_id, payment_intent, status, amount_minor, currency, updated_at) VALUES ('o1', 'pi_1', 'paid', 1000, 'USD', 't')", &[]).unwrap();
        let duplicate = Told { id: "dp_2".into(), payment_intent: Some("pi_2".into()), ..told("needs_response") };
        record(&db, "o1", &duplicate, "t1").unwrap();
        assert!(!concerns_kept_payment(&db, "o1", &duplicate).unwrap());
        assert!(!block_fulfilment(&db, "o1").unwrap() && !any_open(&db, "o1").unwrap());
        assert!(any_unsettled_of_returned(&db, "o1").unwrap());
        record(&db, "o1", &Told { status: "lost".into(), ..duplicate.clone() }, "t2").unwrap();
        assert!(!block_fulfilment(&db, "o1").unwrap() && any_unsettled_of_returned(&db, "o1").unwrap());
        let other = Told { id: "dp_3".into(), status: "won".into(), ..duplicate };
        record(&db, "o1", &other, "t2").unwrap();
        assert!(any_unsettled_of_returned(&db, "o1").unwrap(), "one won, one lost");
        record(&db, "o1", &told("needs_response"), "t3").unwrap();
        assert!(concerns_kept_payment(&db, "o1", &told("lost")).unwrap());
        assert!(block_fulfilment(&db, "o1").unwrap() && any_open(&db, "o1").unwrap());
    }

    #[test]
    fn a_lost_dispute_keeps_blocking() {
        let db = db();
        record(&db, "o1", &told("lost"), "t1").unwrap();
        assert!(block_fulfilment(&db, "o1").unwrap());
        assert!(!any_open(&db, "o1").unwrap());
    }
}
