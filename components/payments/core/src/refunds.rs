//! Refunds: the ones an admin asks for (to the intent that paid, never
//! more than it captured, totals exact with dashboard refunds), and the
//! automatic ones for money an order could not take (paid after it ended,
//! or paid twice). Every refund is a row in the ledger.

use crate::ledger::{self, Kind, Sighting};
use crate::lifecycle::{apply, Applied, Outcome, PaymentError, Source};
use crate::stripe::{StripeConfig, StripeError};
use crate::stripe_keys::StripeKey;
use crate::summary::payment_for;
use orders_core::inventory_client::Inventory;
use orders_core::orders::{self, Order};
use serde::Serialize;
use serde_json::json;
use storage::{transaction, Db, DbError};

/// A refund the shop owes: money that arrived for an order that could not
/// take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutomaticRefund {
    pub payment_intent: String,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
    /// `pending` (being sent, or Stripe could not be reached yet),
    /// `refunded`, or `failed` (Stripe refused it: an admin must act).
    pub status: String,
    pub attempts: i64,
    pub stripe_refund: Option<String>,
    pub last_error: Option<String>,
}

fn automatic_refund(r: &storage::Row) -> Result<AutomaticRefund, DbError> {
    Ok(AutomaticRefund {
        payment_intent: r.text("payment_intent")?,
        order_id: r.text("order_id")?,
        amount_minor: r.int("amount_minor")?,
        currency: r.text("currency")?,
        reason: r.text("reason")?,
        status: r.text("status")?,
        attempts: r.int("attempts")?,
        stripe_refund: r.opt_text("stripe_refund")?,
        last_error: r.opt_text("last_error")?,
    })
}

/// Money of this PaymentIntent is owed back (an automatic refund made, on
/// its way, or failed for an admin): it stays owed back.
pub fn owed_back(db: &dyn Db, payment_intent: &str) -> Result<bool, DbError> {
    Ok(!db.query("SELECT 1 AS x FROM automatic_refunds WHERE payment_intent = ?", &[payment_intent.into()])?.is_empty())
}

/// The automatic refunds of one order.
pub fn automatic_refunds(db: &dyn Db, order_id: &str) -> Result<Vec<AutomaticRefund>, DbError> {
    db.query("SELECT * FROM automatic_refunds WHERE order_id = ? ORDER BY created_at, payment_intent", &[order_id.into()])?
        .iter()
        .map(|r| automatic_refund(&r))
        .collect()
}

/// Stop retrying an automatic refund after this many attempts Stripe could
/// not answer; it is then `failed` for an admin.
pub const MAX_REFUND_ATTEMPTS: i64 = 20;

/// Send the pending automatic refunds (of one order, or up to `limit` of
/// all) to Stripe: a full refund of that PaymentIntent, Idempotency-Key
/// `auto-refund:<intent>`, so a retry or two instances at once refund once
/// (after Stripe answered a 5xx, the refund an earlier attempt made is
/// looked for before the key's next generation is used: [`earlier_refund`]).
/// Stripe refusing it marks it `failed` and flags the order
/// (`automatic_refund_failed`); Stripe unreachable leaves it `pending` for
/// the next sweep. Each refund done writes an `order.payment_returned`
/// event (the customer's email). Returns how many were refunded.
pub fn refund_owed(db: &dyn Db, stripe: &crate::stripe::StripeConfig, order_id: Option<&str>, limit: u32) -> Result<usize, DbError> {
    if !stripe.configured() {
        return Ok(0);
    }
    let rows = match order_id {
        Some(id) => db.query("SELECT * FROM automatic_refunds WHERE status = 'pending' AND order_id = ?", &[id.into()])?,
        None => db.query(
            "SELECT * FROM automatic_refunds WHERE status = 'pending' ORDER BY created_at LIMIT ?",
            &[(limit as i64).into()],
        )?,
    };
    let owed: Vec<AutomaticRefund> = rows.iter().map(|r| automatic_refund(&r)).collect::<Result<_, _>>()?;
    let mut done = 0;
    for r in owed {
        // What Stripe captured, so an amount it takes, unless it was
        // recorded before the shop counted Stripe's units apart (see
        // `stripe_units`): then it fails for an admin, as a refusal does.
        let amount = crate::stripe_units::to_stripe(r.amount_minor, &r.currency);
        let fields = vec![
            ("payment_intent".to_string(), r.payment_intent.clone()),
            ("amount".to_string(), amount.as_ref().map(|a| a.to_string()).unwrap_or_default()),
            ("reason".to_string(), if r.reason == "paid_twice" { "duplicate" } else { "requested_by_customer" }.to_string()),
            ("metadata[order_id]".to_string(), r.order_id.clone()),
            ("metadata[automatic_refund]".to_string(), r.reason.clone()),
        ];
        let now = clock::now_rfc3339();
        let key = StripeKey::load(db, &format!("auto-refund:{}", r.payment_intent))?;
        let made = match earlier_refund(stripe, &key, &r.payment_intent) {
            Ok(Some(found)) => Ok(found),
            Ok(None) => match &amount {
                Ok(_) => create_refund(db, stripe, &key, fields),
                Err(e) => Err(crate::stripe::StripeError::Rejected { status: 422, message: e.0.clone() }),
            },
            Err(e) => Err(e),
        };
        // A refund Stripe made but reports failed or canceled (an earlier
        // attempt's, found by `earlier_refund`) returned nothing: a refusal.
        let mut in_flight = false;
        let made = match made {
            Ok(refund) if refund["status"].as_str().is_some_and(ledger::refund_undone) => Err(crate::stripe::StripeError::Rejected {
                status: 402,
                message: format!("Stripe's refund {} is {}", refund["id"].as_str().unwrap_or("?"), refund["status"].as_str().unwrap_or("?")),
            }),
            // 409: another instance is sending this very refund (same
            // Idempotency-Key) at this moment; its outcome is recorded by it,
            // or found by the next attempt (found in review: it was taken for
            // a refusal, the refund marked failed and the order flagged).
            Err(crate::stripe::StripeError::Rejected { status: 409, message }) => {
                in_flight = true;
                Err(crate::stripe::StripeError::Unavailable(message))
            }
            other => other,
        };
        let stripe_down = matches!(
            &made,
            Err(crate::stripe::StripeError::ServerError { .. } | crate::stripe::StripeError::RateLimited { .. })
        ) || matches!(&made, Err(crate::stripe::StripeError::Unavailable(_))) && !in_flight;
        match made {
            Ok(refund) => {
                let refund_id = refund["id"].as_str().unwrap_or("").to_string();
                let status = refund["status"].as_str().filter(|s| !s.is_empty()).unwrap_or("succeeded");
                let changed = transaction(db, |tx| -> Result<bool, PaymentError> {
                    // The order's row first, as a payment that owes money
                    // back locks it before this refund's row.
                    orders::lock(tx, &r.order_id)?;
                    let moved = tx.query(
                        "UPDATE automatic_refunds SET status = 'refunded', stripe_refund = ?, attempts = attempts + 1, updated_at = ? \
                         WHERE payment_intent = ? AND status = 'pending' RETURNING payment_intent",
                        &[refund_id.as_str().into(), now.as_str().into(), r.payment_intent.as_str().into()],
                    )?;
                    if moved.is_empty() {
                        return Ok(false);
                    }
                    if !refund_id.is_empty() {
                        let seen = Sighting {
                            parent_id: Some(&r.payment_intent),
                            amount_minor: refund["amount"].as_i64().filter(|a| *a > 0).or(Some(r.amount_minor)),
                            currency: Some(&r.currency),
                            ..Default::default()
                        };
                        let recorded = ledger::record(tx, &r.order_id, Kind::Refund, &refund_id, status, "shop", &seen)?;
                        // Its `refund.failed` came first (found in review:
                        // the entry was then marked refunded, though nothing
                        // went back): failed for an admin, as a refusal is.
                        if ledger::refund_undone(&recorded.status) {
                            tx.execute(
                                "UPDATE automatic_refunds SET status = 'failed', last_error = ?, updated_at = ? WHERE payment_intent = ?",
                                &[format!("Stripe's refund {refund_id} is {}", recorded.status).into(), now.as_str().into(), r.payment_intent.as_str().into()],
                            )?;
                            if let Some(order) = orders::load(tx, &r.order_id)? {
                                orders::flag(tx, &order, "automatic_refund_failed")?;
                            }
                            return Ok(false);
                        }
                    }
                    let order = orders::load(tx, &r.order_id)?;
                    orders::record_event(tx, "order.payment_returned", &r.payment_intent, &json!({
                        "order_id": r.order_id,
                        "user_id": order.as_ref().map(|o| o.user_id.clone()),
                        "reason": r.reason,
                        "amount": { "amount_minor": r.amount_minor, "currency": r.currency },
                        "order": order,
                    }))?;
                    Ok(true)
                })
                .map_err(|e| match e {
                    PaymentError::Storage(d) => d,
                    other => DbError::Other(format!("{other:?}")),
                })?;
                done += usize::from(changed);
            }
            Err(e) => {
                // A refusal ends it at once; anything else (Stripe unreachable,
                // a 5xx, a rate limit) is tried again, up to
                // MAX_REFUND_ATTEMPTS. Either way an end is flagged for an
                // admin (found in review: giving up after the last transient
                // failure flagged nothing), and only by the attempt that moved
                // the row (another may have recorded the refund meanwhile).
                let (refused, error) = match &e {
                    crate::stripe::StripeError::Rejected { message, .. } => (true, message.clone()),
                    other => (false, format!("{other:?}")),
                };
                // Two statements rather than a boolean parameter: Postgres
                // would type `? = 1` as int4, and Spin sends every integer
                // as int8 (found in review).
                let sql = if refused {
                    "UPDATE automatic_refunds SET attempts = attempts + 1, last_error = ?, updated_at = ?, status = 'failed' \
                     WHERE payment_intent = ? AND status = 'pending' RETURNING status"
                } else {
                    "UPDATE automatic_refunds SET attempts = attempts + 1, last_error = ?, updated_at = ?, \
                     status = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE status END \
                     WHERE payment_intent = ? AND status = 'pending' RETURNING status"
                };
                let mut params: Vec<storage::Value> = vec![error.as_str().into(), now.as_str().into()];
                if !refused {
                    params.push(MAX_REFUND_ATTEMPTS.into());
                }
                params.push(r.payment_intent.as_str().into());
                transaction(db, |tx| -> Result<(), DbError> {
                    orders::lock(tx, &r.order_id)?;
                    let ended = tx.query(sql, &params)?;
                    if ended.first().map(|row| row.text("status")).transpose()?.as_deref() == Some("failed") {
                        if let Some(order) = orders::load(tx, &r.order_id)? {
                            orders::flag(tx, &order, "automatic_refund_failed")?;
                        }
                    }
                    Ok(())
                })?;
                // Stripe is down or limiting: the rest waits for the next
                // call rather than each waiting out its timeout (found in
                // review: a sweep during an outage took half an hour). Not
                // for another instance sending this very refund (a 409, taken
                // as unavailable above) or an answer that made no sense.
                if stripe_down {
                    break;
                }
            }
        }
    }
    Ok(done)
}


/// Why a refund could not be made.
#[derive(Debug, Clone, PartialEq)]
pub enum RefundError {
    /// Nothing (or less than asked) is left to refund: the refundable amount.
    TooMuch { refundable: i64 },
    /// The order was never paid through a PaymentIntent we know.
    NotPaid,
    /// Stripe does not take this amount in the order's currency (see
    /// `stripe_units`).
    NotPayable(String),
    Stripe(crate::stripe::StripeError),
    Payment(PaymentError),
}

/// A refund made: what it did to the order, and Stripe's refund id (the
/// operation a restock for it is recorded under).
#[derive(Debug, Clone, PartialEq)]
pub struct RefundMade {
    pub applied: Applied,
    pub refund_id: String,
    /// The refund was already recorded before this request: Stripe answered
    /// with one an earlier request under the same key made.
    pub replayed: bool,
}

/// What can still go back of an order's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refundable {
    /// The PaymentIntent that paid.
    pub intent: String,
    /// What it captured (at most the order's total).
    pub captured: i64,
    /// What is left to refund.
    pub left: i64,
    /// The refunds of it that returned nothing in the end (failed or
    /// cancelled at Stripe): 0 unless one did.
    pub undone: i64,
    /// Every refund of it the shop has a row for, whatever became of it:
    /// grows with each refund made, also one that sends a failed one again.
    pub recorded: i64,
}

/// What can still go back of an order's payment; `None` when no money was
/// captured (an order cancelled before it was paid has an intent on
/// record, but nothing to refund). Never more than the intent that paid
/// captured, less what went back already: the largest of the order's
/// refunded total, Stripe's figure for its charge (from its events) and the
/// shop's refund rows. Once a refund of it failed or was cancelled at
/// Stripe, those totals still count it, so `stripe` is asked for its live
/// figure (`amount_refunded` drops when a refund fails; it counts dashboard
/// refunds too), and what went back is the larger of that and the shop's
/// refund rows that did not fail; when Stripe cannot be asked (or `stripe`
/// is `None`), the refunded totals less the failed refunds (found in
/// review: that estimate is wrong when a failed refund was never counted,
/// or when money the shop knows only from Stripe's events meets a failure).
pub fn refundable(db: &dyn Db, order: &Order, stripe: Option<&StripeConfig>) -> Result<Option<Refundable>, DbError> {
    let payment = payment_for(db, &order.id)?;
    let captured = payment.as_ref().is_some_and(|p| p.captured());
    let Some(intent) = payment.and_then(|p| p.payment_intent).filter(|_| captured) else { return Ok(None) };
    let paying = ledger::find(db, &intent)?;
    let captured = paying.as_ref().and_then(|p| p.amount_minor).unwrap_or(order.total.amount_minor).min(order.total.amount_minor);
    let seen = order.refunded.amount_minor.max(paying.as_ref().map_or(0, |p| p.amount_refunded));
    let ledger::RefundTotals { returned: rows, undone } = ledger::refund_totals(db, &intent)?;
    let already = if undone == 0 {
        seen.max(rows)
    } else {
        match stripe.filter(|s| s.configured()).and_then(|s| refunded_at_stripe(s, &intent)) {
            Some(live) => live.max(rows),
            None => (seen - undone).max(rows),
        }
    };
    Ok(Some(Refundable { left: (captured - already).max(0), intent, captured, undone, recorded: rows + undone }))
}

/// Refund `amount` (default: everything not yet refunded) through Stripe,
/// then record it. The Stripe call carries `idempotency_key` (at its
/// current generation, see [`crate::stripe_keys`]), and before it a refund
/// already made under the key (any generation, any age) is looked for at
/// Stripe by the marker it carries, and recorded instead of a new one:
/// Stripe forgets an Idempotency-Key after 24 hours, so a request repeated
/// a day later would otherwise refund again (found in review).
pub fn refund_via_stripe(
    db: &dyn Db,
    stripe: &crate::stripe::StripeConfig,
    order: &Order,
    amount: Option<i64>,
    idempotency_key: &str,
    actor: &str,
    inventory: &dyn Inventory,
) -> Result<RefundMade, RefundError> {
    let Some(Refundable { intent, captured, left: refundable, .. }) = self::refundable(db, order, Some(stripe)).map_err(|e| RefundError::Payment(e.into()))? else {
        return Err(RefundError::NotPaid);
    };
    let key = StripeKey::load(db, idempotency_key).map_err(|e| RefundError::Payment(e.into()))?;
    // A refund made under this key is the result, whatever has been
    // recorded since: it is checked against what the intent captured, not
    // against what is left now. One that failed or was cancelled at Stripe
    // since is the answer too (502, naming it): the key asked for one
    // refund, and the money goes again under another key, or none (an
    // earlier version made a new one under the key's next generation, and
    // two retries at once each made one: found in review).
    if let Some(found) = refund_marked(stripe, &key, &intent).map_err(RefundError::Stripe)? {
        return record_made(db, stripe, order, &intent, captured, &found, true, actor, inventory);
    }
    let amount = amount.unwrap_or(refundable);
    if amount < 1 || amount > refundable {
        return Err(RefundError::TooMuch { refundable });
    }
    let in_stripe_units = crate::stripe_units::to_stripe(amount, order.total.currency.code()).map_err(|e| RefundError::NotPayable(e.0))?;
    let fields = vec![
        ("payment_intent".to_string(), intent.clone()),
        ("amount".to_string(), in_stripe_units.to_string()),
        ("metadata[order_id]".to_string(), order.id.clone()),
    ];
    let refund = create_refund(db, stripe, &key, fields).map_err(RefundError::Stripe)?;
    if refund["amount"].as_i64().is_some_and(|a| a > amount) {
        return Err(RefundError::Stripe(crate::stripe::StripeError::Unexpected(format!("a refund of {} where {amount} was asked", refund["amount"]))));
    }
    record_made(db, stripe, order, &intent, captured, &refund, false, actor, inventory)
}

/// A refund request repeated on an order with nothing left to refund (a
/// full refund, say): the refund made under its key, if Stripe has one,
/// recorded and applied to the order as when it was made (found in review:
/// a retry after the first answer was lost at the recording answered 200
/// and left the order `paid` until Stripe's event came). `None` when the
/// order has no captured payment or no refund carries the key.
pub fn replay_under(
    db: &dyn Db,
    stripe: &crate::stripe::StripeConfig,
    order: &Order,
    idempotency_key: &str,
    actor: &str,
    inventory: &dyn Inventory,
) -> Result<Option<RefundMade>, RefundError> {
    let Some(Refundable { intent, captured, .. }) = self::refundable(db, order, Some(stripe)).map_err(|e| RefundError::Payment(e.into()))? else {
        return Ok(None);
    };
    let key = StripeKey::load(db, idempotency_key).map_err(|e| RefundError::Payment(e.into()))?;
    match refund_marked(stripe, &key, &intent).map_err(RefundError::Stripe)? {
        Some(found) => record_made(db, stripe, order, &intent, captured, &found, true, actor, inventory).map(Some),
        None => Ok(None),
    }
}

/// Record a refund Stripe made (or answered again) and apply the refunded
/// total to the order. `found` is one made earlier under the request's key.
#[allow(clippy::too_many_arguments)]
fn record_made(
    db: &dyn Db,
    stripe: &crate::stripe::StripeConfig,
    order: &Order,
    intent: &str,
    captured: i64,
    refund: &serde_json::Value,
    found: bool,
    actor: &str,
    inventory: &dyn Inventory,
) -> Result<RefundMade, RefundError> {
    // Count each Stripe refund once, by its id: a replayed request (same
    // Idempotency-Key) or a refund found again returns the same refund and
    // adds nothing. Stripe's answer is checked before anything is recorded from it.
    let (Some(refund_id), Some(refunded_amount)) = (refund["id"].as_str().filter(|id| !id.is_empty()), refund["amount"].as_i64()) else {
        return Err(RefundError::Stripe(crate::stripe::StripeError::Unexpected("a refund without an id or amount".into())));
    };
    if !(1..=captured).contains(&refunded_amount) {
        return Err(RefundError::Stripe(crate::stripe::StripeError::Unexpected(format!(
            "a refund of {refunded_amount} where at most {captured} could be"
        ))));
    }
    // A refund Stripe reports failed or cancelled already (one an earlier
    // attempt made, found again) returned nothing: not a refund made (found
    // in review: it was answered 200, and its later event flagged nothing).
    if let Some(undone) = refund["status"].as_str().filter(|s| ledger::refund_undone(s)) {
        return Err(RefundError::Stripe(crate::stripe::StripeError::Rejected { status: 402, message: format!("Stripe's refund {refund_id} is {undone}") }));
    }
    let refund_id = refund_id.to_string();
    let status = refund["status"].as_str().filter(|s| !s.is_empty()).unwrap_or("succeeded");
    let (total, recorded_before) = transaction(db, |tx| -> Result<(i64, bool), PaymentError> {
        // The shop's refund rows are recorded only here (a `charge.refunded`
        // event records the charge, not its refunds; a refund's status
        // change records it as `event`), so one already there was made by
        // an earlier request under this key.
        let replayed = ledger::find(tx, &refund_id)?.is_some_and(|o| o.origin == "shop");
        let seen = Sighting { parent_id: Some(intent), amount_minor: Some(refunded_amount), currency: Some(order.total.currency.code()), ..Default::default() };
        ledger::record(tx, &order.id, Kind::Refund, &refund_id, status, "shop", &seen)?;
        Ok((ledger::refund_totals(tx, intent)?.returned, replayed))
    })
    .map_err(RefundError::Payment)?;
    // Stripe's own total for the charge is exact: it counts this refund and
    // refunds made outside the shop (its dashboard), which our refund rows
    // cannot know. When Stripe cannot be asked now, the floor is what is
    // known for sure: our refund rows, or the order's total as last seen
    // (which a `charge.refunded` event for this very refund may already
    // have raised, so this refund is never added on top of it); the next
    // `charge.refunded` event brings the exact total.
    let total = match refunded_at_stripe(stripe, intent) {
        Some(at_stripe) => total.max(at_stripe),
        None => total.max(order.refunded.amount_minor),
    }
    .min(captured);
    let refunded = Outcome::Refunded { total_refunded: total, payment_intent: Some(intent.to_string()) };
    let applied = apply(db, &order.id, &refunded, Source::Shop, actor, inventory).map_err(RefundError::Payment)?;
    Ok(RefundMade { applied, refund_id, replayed: found || recorded_before })
}

/// The refunded total of the charge that captured `intent`'s money, as
/// Stripe reports it (`latest_charge.amount_refunded`).
fn refunded_at_stripe(stripe: &crate::stripe::StripeConfig, intent: &str) -> Option<i64> {
    let pi = stripe.get(&format!("/v1/payment_intents/{intent}?expand[]=latest_charge")).ok()?;
    pi["latest_charge"]["amount_refunded"].as_i64().filter(|a| *a >= 0)
}


/// The metadata field every refund the shop creates carries: its key's
/// marker ([`StripeKey::marker`], the same for every generation).
pub const KEY_METADATA: &str = "shop_idempotency_key";

/// Create a refund under `key`, marked with it.
fn create_refund(db: &dyn Db, stripe: &StripeConfig, key: &StripeKey, mut fields: Vec<(String, String)>) -> Result<serde_json::Value, StripeError> {
    fields.push((format!("metadata[{KEY_METADATA}]"), key.marker()));
    key.post(db, stripe, "/v1/refunds", &fields)
}

/// Stripe's list of refunds is read this many at a time, and at most this
/// many pages are read.
const REFUNDS_PER_PAGE: usize = 100;
const MOST_REFUND_PAGES: usize = 20;

/// After Stripe answered a 5xx to a refund under an earlier generation of
/// `key`, that refund may exist all the same: it is looked for among the
/// intent's refunds at Stripe (`GET /v1/refunds?payment_intent=…`, every
/// page), by the marker it carries. `None` when the key never failed (no
/// call is made) or no refund carries it.
pub fn earlier_refund(stripe: &StripeConfig, key: &StripeKey, intent: &str) -> Result<Option<serde_json::Value>, StripeError> {
    if !key.after_a_failure() {
        return Ok(None);
    }
    refund_marked(stripe, key, intent)
}

/// The amounts of every refund the shop itself recorded for the order's
/// payment (its own requests and cancellations, failed ones too), whatever
/// events recorded: what a refund without an Idempotency-Key derives its
/// key from. 0 when the order has no payment.
pub fn recorded_by_shop(db: &dyn Db, order: &Order) -> Result<i64, DbError> {
    let Some(intent) = payment_for(db, &order.id)?.and_then(|p| p.payment_intent) else { return Ok(0) };
    ledger::shop_refunds_recorded(db, &intent)
}

/// The intent's refund at Stripe carrying `key`'s marker, read a page at a time.
fn refund_marked(stripe: &StripeConfig, key: &StripeKey, intent: &str) -> Result<Option<serde_json::Value>, StripeError> {
    let marker = key.marker();
    let mut after: Option<String> = None;
    for _ in 0..MOST_REFUND_PAGES {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("payment_intent", intent).append_pair("limit", &REFUNDS_PER_PAGE.to_string());
        if let Some(last) = &after {
            query.append_pair("starting_after", last);
        }
        let page = stripe.get(&format!("/v1/refunds?{}", query.finish()))?;
        let Some(refunds) = page["data"].as_array() else {
            return Err(StripeError::Unexpected("a list of refunds without data".into()));
        };
        if let Some(found) = refunds.iter().find(|r| r["metadata"][KEY_METADATA].as_str() == Some(marker.as_str())) {
            return Ok(Some(found.clone()));
        }
        match refunds.last().and_then(|r| r["id"].as_str()) {
            Some(last) if page["has_more"].as_bool() == Some(true) => after = Some(last.to_string()),
            _ => return Ok(None),
        }
    }
    Err(StripeError::Unexpected(format!("more than {} refunds of {intent}", REFUNDS_PER_PAGE * MOST_REFUND_PAGES)))
}
