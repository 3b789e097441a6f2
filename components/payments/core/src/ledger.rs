//! The payment ledger: every Stripe object that pays for an order, with its
//! own status, as Stripe defines them.
//!
//! | kind | created by | statuses (final in bold) |
//! |---|---|---|
//! | `checkout_session` | the shop (`POST /v1/checkout/sessions`) | `open` → **`complete`** or **`expired`** |
//! | `payment_intent` | the shop (Payment Element) or Checkout | `requires_payment_method` ⇄ `processing` → **`succeeded`** or **`canceled`** |
//! | `charge` | Stripe, when an intent captures money | `succeeded` (its `amount_refunded` grows) |
//! | `refund` | the shop, or the Stripe dashboard | `pending` → `succeeded` → **`failed`** or **`canceled`** |
//!
//! A declined card is not final: the intent goes back to
//! `requires_payment_method` and the customer may try another card, so no
//! failed attempt ends an order. An object belongs to exactly one order (its
//! primary key is Stripe's id); an event about an object of another order,
//! or about an old object, changes only that object's row. Statuses only
//! move forward: a late event never reopens a final one. A refund that
//! succeeded can still fail later (the card was closed: Stripe then returns
//! the money to the shop's balance and sends `refund.failed`), so for
//! refunds `succeeded` is not final; `failed` and `canceled` are.

use serde::Serialize;
use serde_json::Value as Json;
use storage::{Db, DbError, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    CheckoutSession,
    PaymentIntent,
    Charge,
    Refund,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::CheckoutSession => "checkout_session",
            Kind::PaymentIntent => "payment_intent",
            Kind::Charge => "charge",
            Kind::Refund => "refund",
        }
    }

    /// How far along its lifecycle a status is: a change is applied only
    /// when it moves the object forward (equal ranks below 2 may alternate,
    /// as an intent does between `requires_payment_method` and
    /// `processing`).
    fn rank(&self, status: &str) -> u8 {
        match self {
            Kind::Charge => 1,
            _ if self.early_statuses().contains(&status) => 0,
            Kind::Refund if refund_undone(status) => 3,
            _ => 2,
        }
    }

    /// [`Kind::rank`] of the row's `status` column, as SQL: the `UPDATE`
    /// that moves an object forward decides on the row as it is when it
    /// writes it (on Postgres, after waiting for a concurrent writer).
    fn rank_sql(&self) -> String {
        let list = |statuses: &[&str]| statuses.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        match self {
            Kind::Charge => "1".to_string(),
            Kind::Refund => format!("(CASE WHEN status IN ({}) THEN 0 WHEN status IN ({}) THEN 3 ELSE 2 END)", list(self.early_statuses()), list(&REFUND_UNDONE)),
            _ => format!("(CASE WHEN status IN ({}) THEN 0 ELSE 2 END)", list(self.early_statuses())),
        }
    }

    /// The statuses of rank 0: the object can still change its mind.
    fn early_statuses(&self) -> &'static [&'static str] {
        match self {
            Kind::CheckoutSession => &["open"],
            Kind::PaymentIntent => &["requires_payment_method", "processing", "requires_action", "requires_confirmation"],
            Kind::Refund => &["pending", "requires_action"],
            Kind::Charge => &[],
        }
    }

    fn parse(raw: &str) -> Option<Kind> {
        [Kind::CheckoutSession, Kind::PaymentIntent, Kind::Charge, Kind::Refund].into_iter().find(|k| k.as_str() == raw)
    }
}

/// The statuses of a refund that returned nothing in the end: Stripe
/// could not pay it out after all (`failed`, the money back in the shop's
/// balance) or it was cancelled before it was sent.
pub const REFUND_UNDONE: [&str; 2] = ["failed", "canceled"];

/// One Stripe object of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentObject {
    pub id: String,
    pub order_id: String,
    pub kind: Kind,
    pub status: String,
    /// A Checkout Session's intent: the session; a charge: its intent; a
    /// refund: the intent it returns money from.
    pub parent_id: Option<String>,
    /// `shop` (this shop created it) or `event` (first known from Stripe).
    pub origin: String,
    /// Intent and charge: the money captured; refund: the money returned.
    pub amount_minor: Option<i64>,
    /// Intent and charge: Stripe's refunded total.
    pub amount_refunded: i64,
    pub currency: Option<String>,
    /// A Checkout Session's expiry (Unix seconds).
    pub expires_at: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

fn object(r: &Row) -> Result<PaymentObject, DbError> {
    Ok(PaymentObject {
        id: r.text("id")?,
        order_id: r.text("order_id")?,
        kind: Kind::parse(&r.text("kind")?).ok_or_else(|| DbError::Other("unknown payment object kind".into()))?,
        status: r.text("status")?,
        parent_id: r.opt_text("parent_id")?,
        origin: r.text("origin")?,
        amount_minor: r.opt_int("amount_minor")?,
        amount_refunded: r.int("amount_refunded")?,
        currency: r.opt_text("currency")?,
        expires_at: r.opt_int("expires_at")?,
        created_at: r.text("created_at")?,
        updated_at: r.text("updated_at")?,
    })
}

/// Every object of an order, oldest first.
pub fn objects_of(db: &dyn Db, order_id: &str) -> Result<Vec<PaymentObject>, DbError> {
    db.query("SELECT * FROM payment_objects WHERE order_id = ? ORDER BY created_at, id", &[order_id.into()])?
        .iter()
        .map(|r| object(&r))
        .collect()
}

/// Take the turn to ask Stripe about the object `id` now: false when
/// someone asked within the last `every` seconds (answer from the records
/// then), else true with the moment recorded, so a page called in a loop
/// (or by many at once) asks Stripe about a session at most about once per
/// `every` seconds. Only a read while the turn is taken; the winner of a
/// race is decided by the conditional update. [`release_stripe_check`]
/// gives the turn back when Stripe did not answer.
pub fn take_stripe_check(db: &dyn Db, id: &str, now: i64, every: i64) -> Result<bool, DbError> {
    let since = now - every;
    if !db.query("SELECT id FROM payment_objects WHERE id = ? AND checked_at > ?", &[id.into(), since.into()])?.is_empty() {
        return Ok(false);
    }
    let taken = db.query(
        "UPDATE payment_objects SET checked_at = ? WHERE id = ? AND (checked_at IS NULL OR checked_at <= ?) RETURNING id",
        &[now.into(), id.into(), since.into()],
    )?;
    Ok(!taken.is_empty())
}

/// Give back the turn [`take_stripe_check`] took at `now`: Stripe did not
/// answer, so the next call asks again at once.
pub fn release_stripe_check(db: &dyn Db, id: &str, now: i64) -> Result<(), DbError> {
    db.execute("UPDATE payment_objects SET checked_at = NULL WHERE id = ? AND checked_at = ?", &[id.into(), now.into()])
}

/// One object by its Stripe id.
pub fn find(db: &dyn Db, id: &str) -> Result<Option<PaymentObject>, DbError> {
    db.query("SELECT * FROM payment_objects WHERE id = ?", &[id.into()])?.first().map(|r| object(&r)).transpose()
}

/// What is known of an object when it is recorded or seen again.
#[derive(Debug, Clone, Default)]
pub struct Sighting<'a> {
    pub parent_id: Option<&'a str>,
    pub amount_minor: Option<i64>,
    pub amount_refunded: Option<i64>,
    pub currency: Option<&'a str>,
    pub expires_at: Option<i64>,
}

/// Why an object could not be recorded for an order.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerError {
    /// Stripe's id is already recorded for another order (an account shared
    /// with another shop, or a Stripe defect): nothing was recorded.
    HeldByAnotherOrder { id: String, order_id: String },
    Storage(DbError),
}

impl From<DbError> for LedgerError {
    fn from(e: DbError) -> Self {
        Self::Storage(e)
    }
}

/// Record `id` as an object of `order_id` with `status`, or move the
/// recorded one forward: its status only when that is a step forward in
/// its lifecycle, its amounts only upwards, the rest filled in where
/// unknown. Returns the object as it now is.
pub fn record(tx: &dyn Db, order_id: &str, kind: Kind, id: &str, status: &str, origin: &str, seen: &Sighting) -> Result<PaymentObject, LedgerError> {
    let now = clock::now_rfc3339();
    let inserted = tx.query(
        "INSERT INTO payment_objects (id, order_id, kind, status, parent_id, origin, amount_minor, amount_refunded, currency, expires_at, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING *",
        &[
            id.into(),
            order_id.into(),
            kind.as_str().into(),
            status.into(),
            seen.parent_id.into(),
            origin.into(),
            seen.amount_minor.into(),
            seen.amount_refunded.unwrap_or(0).into(),
            seen.currency.map(|c| c.to_ascii_uppercase()).into(),
            seen.expires_at.into(),
            now.as_str().into(),
            now.as_str().into(),
        ],
    )?;
    if let Some(row) = inserted.first() {
        return Ok(object(&row)?);
    }
    let existing = find(tx, id)?.ok_or_else(|| DbError::Other(format!("payment object {id} vanished")))?;
    if existing.order_id != order_id || existing.kind != kind {
        return Err(LedgerError::HeldByAnotherOrder { id: id.to_string(), order_id: existing.order_id });
    }
    // Forward only, decided in the statement itself: a status read before
    // and written back could undo one a concurrent writer moved on.
    let current_rank = kind.rank_sql();
    let greatest = tx.dialect().greatest();
    let rows = tx.query(
        &format!(
            "UPDATE payment_objects SET status = CASE WHEN {current_rank} < CAST(? AS BIGINT) \
             OR ({current_rank} < 2 AND {current_rank} = CAST(? AS BIGINT)) THEN ? ELSE status END, \
             origin = CASE WHEN ? = 'shop' THEN 'shop' ELSE origin END, parent_id = COALESCE(parent_id, ?), \
             amount_minor = COALESCE(?, amount_minor), amount_refunded = {greatest}(amount_refunded, ?), \
             currency = COALESCE(currency, ?), expires_at = COALESCE(expires_at, ?), updated_at = ? \
             WHERE id = ? RETURNING *"
        ),
        &[
            i64::from(kind.rank(status)).into(),
            i64::from(kind.rank(status)).into(),
            status.into(),
            origin.into(),
            seen.parent_id.into(),
            seen.amount_minor.into(),
            seen.amount_refunded.unwrap_or(0).into(),
            seen.currency.map(|c| c.to_ascii_uppercase()).into(),
            seen.expires_at.into(),
            now.as_str().into(),
            id.into(),
        ],
    )?;
    Ok(object(&rows.first().ok_or_else(|| DbError::Other(format!("payment object {id} vanished")))?)?)
}

/// The Stripe objects a signed event (or an object the shop fetched, read
/// as that event) tells about, with the status each now has, in the order
/// they are recorded (a parent before its children). This is Stripe's
/// event catalogue as far as checkout uses it.
pub fn sightings<'a>(event_type: &str, o: &'a Json) -> Vec<(Kind, &'a str, &'static str, Sighting<'a>)> {
    let id = |v: &'a Json| v.as_str().filter(|s| !s.is_empty());
    let currency = id(&o["currency"]);
    let mut out = Vec::new();
    match event_type {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" | "checkout.session.async_payment_failed" | "checkout.session.expired" => {
            let Some(session) = id(&o["id"]) else { return out };
            let status = if event_type == "checkout.session.expired" { "expired" } else { "complete" };
            out.push((Kind::CheckoutSession, session, status, Sighting { currency, expires_at: o["expires_at"].as_i64(), ..Default::default() }));
            if let Some(intent) = id(&o["payment_intent"]) {
                let paid = o["payment_status"].as_str() == Some("paid") && event_type != "checkout.session.async_payment_failed";
                let (status, amount) = match event_type {
                    _ if paid => ("succeeded", o["amount_total"].as_i64()),
                    "checkout.session.async_payment_failed" => ("requires_payment_method", None),
                    _ => ("processing", None),
                };
                out.push((Kind::PaymentIntent, intent, status, Sighting { parent_id: Some(session), amount_minor: amount, currency, ..Default::default() }));
            }
        }
        "payment_intent.succeeded" | "payment_intent.payment_failed" | "payment_intent.canceled" | "payment_intent.processing" => {
            let Some(intent) = id(&o["id"]) else { return out };
            let (status, amount) = match event_type {
                "payment_intent.succeeded" => ("succeeded", o["amount_received"].as_i64()),
                "payment_intent.payment_failed" => ("requires_payment_method", None),
                "payment_intent.canceled" => ("canceled", None),
                _ => ("processing", None),
            };
            out.push((Kind::PaymentIntent, intent, status, Sighting { amount_minor: amount, currency, ..Default::default() }));
            if let (Some(charge), Some(amount)) = (id(&o["latest_charge"]), amount) {
                out.push((Kind::Charge, charge, "succeeded", Sighting { parent_id: Some(intent), amount_minor: Some(amount), currency, ..Default::default() }));
            }
        }
        // A refund changed status (Stripe's current names for the event,
        // and the older one); `refund.created` is not read: the shop records
        // its own refunds from Stripe's answer.
        "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            let Some(refund) = id(&o["id"]) else { return out };
            let Some(status) = ["pending", "requires_action", "succeeded", "failed", "canceled"].into_iter().find(|s| o["status"].as_str() == Some(s)) else {
                return out;
            };
            let amount = o["amount"].as_i64().filter(|a| *a > 0);
            out.push((Kind::Refund, refund, status, Sighting { parent_id: id(&o["payment_intent"]), amount_minor: amount, currency, ..Default::default() }));
        }
        "charge.refunded" => {
            let Some(charge) = id(&o["id"]) else { return out };
            let intent = id(&o["payment_intent"]);
            let refunded = o["amount_refunded"].as_i64().filter(|a| *a >= 0);
            if let Some(intent) = intent {
                out.push((Kind::PaymentIntent, intent, "succeeded", Sighting { amount_refunded: refunded, currency, ..Default::default() }));
            }
            let captured = o["amount_captured"].as_i64().or(o["amount"].as_i64());
            out.push((Kind::Charge, charge, "succeeded", Sighting { parent_id: intent, amount_minor: captured, amount_refunded: refunded, currency, ..Default::default() }));
        }
        _ => {}
    }
    out
}

/// The order the objects of an event belong to, if any is recorded.
pub fn owner(db: &dyn Db, ids: &[&str]) -> Result<Option<String>, DbError> {
    for id in ids {
        if let Some(o) = find(db, id)? {
            return Ok(Some(o.order_id));
        }
    }
    Ok(None)
}

/// Is this refund status one that returned nothing ([`REFUND_UNDONE`])?
pub fn refund_undone(status: &str) -> bool {
    REFUND_UNDONE.contains(&status)
}

/// The refunds of `intent`'s money recorded here (the shop's own and those
/// seen in events), in one statement: what they returned (failed and
/// canceled ones aside), and what the failed and canceled ones had been
/// counted for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefundTotals {
    pub returned: i64,
    pub undone: i64,
}

pub fn refund_totals(db: &dyn Db, intent: &str) -> Result<RefundTotals, DbError> {
    let rows = db.query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN status IN ('failed', 'canceled') THEN 0 ELSE amount_minor END), 0) AS BIGINT) AS returned, \
                CAST(COALESCE(SUM(CASE WHEN status IN ('failed', 'canceled') THEN amount_minor ELSE 0 END), 0) AS BIGINT) AS undone \
         FROM payment_objects WHERE kind = 'refund' AND parent_id = ?",
        &[intent.into()],
    )?;
    let Some(r) = rows.first() else { return Ok(RefundTotals::default()) };
    Ok(RefundTotals { returned: r.int("returned")?, undone: r.int("undone")? })
}

/// The amounts of the refunds of `intent` the shop recorded itself
/// (`origin = 'shop'`, every status), not those only an event recorded.
pub fn shop_refunds_recorded(db: &dyn Db, intent: &str) -> Result<i64, DbError> {
    let rows = db.query(
        "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS n FROM payment_objects WHERE kind = 'refund' AND parent_id = ? AND origin = 'shop'",
        &[intent.into()],
    )?;
    rows.first().map_or(Ok(0), |r| r.int("n"))
}

/// The objects of an order that can still take money: open Checkout
/// Sessions, and PaymentIntents this shop created that have not ended
/// (Checkout's own intents end with their session).
pub fn still_payable(db: &dyn Db, order_id: &str) -> Result<Vec<PaymentObject>, DbError> {
    db.query(
        "SELECT * FROM payment_objects WHERE order_id = ? AND ((kind = 'checkout_session' AND status = 'open') \
         OR (kind = 'payment_intent' AND origin = 'shop' AND status NOT IN ('succeeded', 'canceled'))) ORDER BY created_at, id",
        &[order_id.into()],
    )?
    .iter()
    .map(|r| object(&r))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_name_their_objects_parents_first() {
        let session = json!({ "id": "cs_1", "payment_intent": "pi_1", "payment_status": "paid", "amount_total": 1000, "currency": "usd" });
        let seen = sightings("checkout.session.completed", &session);
        let short: Vec<_> = seen.iter().map(|(k, id, s, _)| (*k, *id, *s)).collect();
        assert_eq!(short, vec![(Kind::CheckoutSession, "cs_1", "complete"), (Kind::PaymentIntent, "pi_1", "succeeded")]);
        assert_eq!(seen[1].3.parent_id, Some("cs_1"));
        assert_eq!(seen[1].3.amount_minor, Some(1000));
        let pi2 = json!({ "id": "pi_2" });
        let declined = sightings("payment_intent.payment_failed", &pi2);
        assert_eq!(declined[0].2, "requires_payment_method", "a declined card is one attempt, not the end");
        let charge = json!({ "id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 300, "amount_captured": 1000 });
        let refunded = sightings("charge.refunded", &charge);
        assert_eq!(refunded.iter().map(|s| s.0).collect::<Vec<_>>(), vec![Kind::PaymentIntent, Kind::Charge]);
        assert!(sightings("customer.created", &json!({ "id": "cus_1" })).is_empty());
        assert!(sightings("checkout.session.completed", &json!({})).is_empty(), "no id, nothing to record");
    }

    #[test]
    fn final_statuses_never_go_back() {
        for (kind, done) in [(Kind::CheckoutSession, "expired"), (Kind::PaymentIntent, "succeeded"), (Kind::Refund, "succeeded")] {
            assert_eq!(kind.rank(done), 2);
        }
        assert!(Kind::Refund.rank("failed") > Kind::Refund.rank("succeeded"), "a refund that succeeded can still fail");
        assert_eq!(Kind::Refund.rank("canceled"), Kind::Refund.rank("failed"));
        assert!(Kind::PaymentIntent.rank("requires_payment_method") == Kind::PaymentIntent.rank("processing"), "attempts alternate");
    }
}
