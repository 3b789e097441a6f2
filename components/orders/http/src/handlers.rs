//! The orders service's use cases, one function per endpoint.

use crate::shop::{cart::cart, catalog::catalog, users::addresses};
use http_kit::auth::Caller;
use http_kit::{ApiError, Ctx, HandlerResult, Pagination, Reply};
use money::{Currency, Money};
use orders_core::domain::address::{Address, AddressInput};
use orders_core::domain::Status;
use orders_core::inventory_client::{HoldError, Inventory, WitInventory};
use orders_core::orders::{self, NewOrder, Order, OrderError, OrderLine, Seen};
use orders_core::privacy;
use orders_core::owed_stock::SettleError;
use orders_core::restock::{self, Restock, RestockError};
use orders_core::schema;
use payments_core::access;
use payments_core::closing::close_at_stripe;
use payments_core::lifecycle::{self, Applied, Outcome, Source};
use payments_core::refunds::{self, RefundError};
use payments_core::stripe::{self, StripeConfig};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use storage::{transaction, Db};
use text_input::FieldProblems;

fn open() -> Result<storage::ServiceDb, ApiError> {
    Ok(schema::open_database()?)
}

/// The caller's or (for admins) any order.
fn visible_order(db: &dyn Db, caller: &Caller, raw_id: &str) -> Result<Order, ApiError> {
    access::order_for(db, caller, raw_id, true)
}

// ---------------------------------------------------------------- placing

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlaceBody {
    shipping_address: Option<AddressInput>,
    /// An entry of the caller's address book instead of an inline address.
    shipping_address_id: Option<String>,
}

/// The shop's choice (`checkout_requires_verified_email`): only accounts
/// with a proven address may place orders.
fn verified_email_required() -> bool {
    spin_sdk::variables::get("checkout_requires_verified_email").map(|v| v.trim() == "true").unwrap_or(false)
}

pub fn place(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    if !caller.email_verified && verified_email_required() {
        return Err(ApiError::new(
            403,
            "email_not_verified",
            "this shop needs a verified email address to place orders: use the link we emailed you (or ask for a new one), then refresh your session",
        ));
    }
    let blank = ctx.body_limited(http_kit::request::DEFAULT_JSON_LIMIT)?.iter().all(|b| b.is_ascii_whitespace());
    let body: PlaceBody = if blank { PlaceBody::default() } else { ctx.json()? };
    let mut problems = FieldProblems::default();
    let inline = body.shipping_address.as_ref().map(|a| a.parse(&mut problems, "shipping_address"));
    if body.shipping_address.is_some() && body.shipping_address_id.is_some() {
        problems.add("shipping_address_id", "send either shipping_address or shipping_address_id, not both");
    }
    problems.finish().map_err(ApiError::validation)?;
    let inline = inline.flatten();
    let key = http_kit::idempotency_key(ctx)?;
    // The request as sent (an address id, not what it resolves to), so a
    // retry matches whatever the book holds by then.
    let mut asked = json!({ "shipping_address": inline });
    if let Some(id) = &body.shipping_address_id {
        asked["shipping_address_id"] = json!(id);
    }
    let request_hash: String = Sha256::digest(asked.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let db = open()?;
    if let Some(k) = &key {
        match orders::lookup_request(&db, &caller.user_id, k, &request_hash)? {
            Seen::Fresh => {}
            seen => return answer_seen(&db, seen),
        }
    }
    // Only after the replay check: a retry of a placed order gets its order
    // even if the entry it named is gone by now or the book is unreachable.
    let address = match (inline, &body.shipping_address_id) {
        (Some(a), _) => Some(a),
        (None, Some(id)) => Some(saved_address(&caller, id)?),
        (None, None) => default_address(&caller)?,
    };
    let key = key.as_deref().map(|k| (k, request_hash.as_str()));
    match place_from_cart(&db, &caller, address, key) {
        Ok(Placed::New(order)) => {
            let order = access::complete_if_free(&db, order)?;
            Ok(Reply::created(&order).with_header("location", format!("/api/orders/{}", order.id)))
        }
        Ok(Placed::Twin(seen)) => answer_seen(&db, seen),
        Err(e) => {
            // A twin with the same key that placed its order meanwhile has
            // emptied the cart or holds the stock: its order is the answer.
            if let Some((k, hash)) = key {
                if let Ok(seen @ (Seen::Replay(_) | Seen::Mismatch)) = orders::lookup_request(&db, &caller.user_id, k, hash) {
                    return answer_seen(&db, seen);
                }
            }
            Err(e)
        }
    }
}

/// What placing the cart came to.
enum Placed {
    /// This request placed this order.
    New(Order),
    /// A request with the same Idempotency-Key placed its order first.
    Twin(Seen),
}

/// The answer to a request whose `Idempotency-Key` was used before.
fn answer_seen(db: &dyn Db, seen: Seen) -> HandlerResult {
    match seen {
        Seen::Replay(id) => {
            let order = access::complete_if_free(db, orders::load(db, &id)?.ok_or_else(|| ApiError::not_found("order"))?)?;
            Ok(Reply::created(&order).with_header("location", format!("/api/orders/{id}")).with_header("idempotent-replayed", "true"))
        }
        Seen::Mismatch => Err(ApiError::new(409, "idempotency_key_reused", "this Idempotency-Key was used with a different request")),
        Seen::Fresh => Err(ApiError::internal("a fresh Idempotency-Key has no answer")),
    }
}

fn from_book(a: addresses::PostalAddress) -> Address {
    Address { name: a.name, line1: a.line1, line2: a.line2, city: a.city, region: a.region, postal_code: a.postal_code, country: a.country }
}

/// An entry of the caller's address book (the order keeps a copy).
fn saved_address(caller: &Caller, id: &str) -> Result<Address, ApiError> {
    let found = addresses::get_address(&caller.user_id, id).map_err(|e| unavailable("address_book_unavailable", "the address book", e.message))?;
    found.map(from_book).ok_or_else(|| {
        let mut problems = FieldProblems::default();
        problems.add("shipping_address_id", "is not an address in your address book");
        match problems.finish() {
            Err(fields) => ApiError::validation(fields),
            Ok(()) => ApiError::internal("a recorded problem vanished"),
        }
    })
}

/// The caller's default shipping address, used when the order names none.
fn default_address(caller: &Caller) -> Result<Option<Address>, ApiError> {
    let found = addresses::default_shipping_address(&caller.user_id).map_err(|e| unavailable("address_book_unavailable", "the address book", e.message))?;
    Ok(found.map(from_book))
}

fn unavailable(code: &'static str, what: &str, cause: String) -> ApiError {
    ApiError::unavailable(code, format!("{what} is unavailable; retry shortly")).with_header("retry-after", "1").with_internal(cause)
}


/// Place the cart as a new order. `key`: the Idempotency-Key and the
/// request's hash. When a twin request with the same key recorded its order
/// first, this request's stock hold is given back and the answer is what
/// the key means now.
fn place_from_cart(db: &dyn Db, caller: &Caller, address: Option<orders_core::domain::Address>, key: Option<(&str, &str)>) -> Result<Placed, ApiError> {
    let snapshot = cart::get_cart(&caller.user_id).map_err(|e| unavailable("cart_unavailable", "the cart", format!("{e:?}")))?;
    if snapshot.lines.is_empty() {
        return Err(ApiError::new(422, "cart_empty", "the cart is empty"));
    }
    let ids: Vec<String> = snapshot.lines.iter().map(|l| l.product_id.clone()).collect();
    let products = catalog::get_products(&ids).map_err(|e| unavailable("catalog_unavailable", "product data", e.message))?;
    let mut currency: Option<Currency> = None;
    let mut lines = Vec::new();
    for l in &snapshot.lines {
        let p = products.iter().find(|p| p.id == l.product_id && p.active).ok_or_else(|| {
            ApiError::new(409, "product_unavailable", format!("product {} is no longer sold; remove it from the cart", l.product_id))
                .with_details(json!({ "product_id": l.product_id }))
        })?;
        let c = Currency::parse(&p.unit_price.currency).map_err(ApiError::internal)?;
        if currency.is_some_and(|cur| cur != c) {
            return Err(ApiError::new(409, "currency_mismatch", "the cart's products are no longer priced in one currency"));
        }
        // The shopper saw the cart in its currency; an order in another one
        // is not what they agreed to (the cart flags such a line
        // `currency_changed`).
        if let Some(cart_currency) = snapshot.currency.as_deref().filter(|cc| *cc != p.unit_price.currency) {
            return Err(ApiError::new(
                409,
                "currency_mismatch",
                format!("product {} is now priced in {}, not in the cart's {cart_currency}; review the cart", l.product_id, p.unit_price.currency),
            )
            .with_details(json!({ "product_id": l.product_id, "cart_currency": cart_currency, "product_currency": p.unit_price.currency })));
        }
        currency = Some(c);
        let unit_price = Money::new(p.unit_price.amount_minor, c);
        let line_total = unit_price.checked_mul(l.quantity as i64).map_err(ApiError::internal)?;
        lines.push(OrderLine { product_id: p.id.clone(), sku: p.sku.clone(), name: p.name.clone(), unit_price, quantity: l.quantity, line_total });
    }
    let currency = currency.ok_or_else(|| ApiError::internal("no currency"))?;
    let order_id = http_kit::ids::uuid_v4()?;
    let ttl = stripe::unpaid_order_ttl_secs();
    // Taken before the hold: the catalog's clock reads no earlier when it
    // sets the hold's expiry, so the order never outlives its hold (found
    // in review: computed after a reserve that waited on locks, the order
    // could still be payable for seconds after the hold lapsed).
    let placed_at = clock::unix_now();
    let holds: Vec<(String, u32)> = lines.iter().map(|l| (l.product_id.clone(), l.quantity)).collect();
    WitInventory.reserve(&order_id, &holds, ttl as u32).map_err(|e| match e {
        HoldError::Unavailable(m) => {
            // The hold's outcome is unknown (its commit may have landed):
            // given back now, or owed to the orders sweep, so the retry does
            // not hold the same stock a second time until this one lapses.
            release_or_owe(db, &order_id);
            unavailable("inventory_unavailable", "stock", m)
        }
        HoldError::Short(s) => {
            let shortages: Vec<_> = s.iter().map(|(p, r, a)| json!({ "product_id": p, "requested": r, "available": a })).collect();
            let names: Vec<&str> = s.iter().map(|(p, _, _)| p.as_str()).collect();
            ApiError::new(409, "insufficient_stock", format!("not enough stock for {}", names.join(", ")))
                .with_details(json!({ "shortages": shortages }))
        }
        HoldError::Refused(m) => ApiError::new(409, "reservation_refused", m),
    })?;
    let cart_version = i64::try_from(snapshot.version).ok();
    let new = NewOrder { id: order_id.clone(), user_id: caller.user_id.clone(), currency, lines, shipping_address: address, expires_at: placed_at + ttl, cart_version };
    // Set when another request placed this cart (version) first.
    let mut cart_taken = false;
    let actor = format!("user:{}", caller.user_id);
    let created = transaction(db, |tx| -> Result<Placed, ApiError> {
        if let Some((k, hash)) = key {
            // First in the transaction: a twin that got here first means
            // nothing is written at all.
            match orders::record_request(tx, &caller.user_id, k, hash, clock::unix_now(), &order_id)? {
                Seen::Fresh => {}
                taken => return Ok(Placed::Twin(taken)),
            }
        }
        // One order per cart as it was read (the orders' unique index on
        // account and cart version): another placement of the same cart
        // (two tabs, a double click without a key, or with another key)
        // finds it ordered.
        let order = match orders::insert(tx, &new, &actor) {
            Err(OrderError::CartOrdered) => {
                cart_taken = true;
                return Err(orders_core::access::cart_already_ordered(None));
            }
            inserted => inserted.map_err(ApiError::from)?,
        };
        // After the insert recorded its event (see privacy::erase_user).
        if privacy::account_erased(tx, &caller.user_id)? {
            return Err(ApiError::new(
                403,
                "account_deleted",
                "this account was deleted, or its deletion was started and has not finished (delete it again to finish); it places no orders",
            ));
        }
        Ok(Placed::New(order))
    });
    let created = match created {
        // A failed commit may have landed all the same (the connection lost
        // after the server committed; found in review: the hold of an order
        // that existed was given back). An order that exists is this
        // request's and keeps its hold; one that cannot be looked up keeps
        // it too (without an order, the hold lapses by itself).
        Err(e) if !cart_taken => match orders::load(db, &order_id) {
            Ok(Some(order)) => Ok(Placed::New(order)),
            Ok(None) => Err(e),
            Err(_) => return Err(e),
        },
        other => other,
    };
    let order = match created {
        Ok(Placed::New(order)) => order,
        other => {
            // Nothing was ordered by this request: give the stock back, or,
            // when the catalog cannot take it now, owe the release (the
            // orders sweep makes it), so the units are not held for an order
            // that does not exist until the hold lapses.
            release_or_owe(db, &order_id);
            if let (true, Some(v)) = (cart_taken, cart_version) {
                // Named, now that the other request's order is committed.
                let placed = orders::of_cart_version(db, &caller.user_id, v).ok().flatten();
                return Err(orders_core::access::cart_already_ordered(placed.as_deref()));
            }
            return other;
        }
    };
    // Only now is the cart cleared — and only if it is still what was ordered.
    if let Err(e) = cart::clear_cart(&caller.user_id, snapshot.version) {
        println!("{}", json!({ "level": "warn", "service": "orders", "order_id": order.id, "cart_not_cleared": format!("{e:?}") }));
    }
    Ok(Placed::New(order))
}

/// Give back the hold of `order_id`, for which no order exists, or owe its
/// release to the orders sweep when the catalog cannot take it now (a
/// release of an unknown hold is a no-op).
fn release_or_owe(db: &dyn Db, order_id: &str) {
    if let Err(e) = WitInventory.release(order_id) {
        let owed = transaction(db, |tx| orders_core::owed_stock::owe_release(tx, order_id));
        println!("{}", json!({ "level": "warn", "service": "orders", "hold": order_id, "release_owed": e, "recorded": owed.is_ok() }));
    }
}

// ---------------------------------------------------------------- reading

pub fn list(ctx: &Ctx) -> HandlerResult {
    let caller = ctx.caller()?;
    let page = Pagination::from_query(&ctx.query)?;
    let db = open()?;
    let (found, total) = orders::list_for_user(&db, &caller.user_id, page.limit, page.offset())?;
    let found = found.into_iter().map(|o| access::expire_if_overdue(&db, o)).collect::<Result<Vec<_>, _>>()?;
    Ok(Reply::ok(&json!({ "orders": found, "page": page.page, "limit": page.limit, "total": total })).with_header("cache-control", "no-store"))
}

pub fn get(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    Ok(Reply::ok(&visible_order(&db, &caller, id)?).with_header("cache-control", "no-store"))
}

pub fn history(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    let order = visible_order(&db, &caller, id)?;
    Ok(Reply::ok(&json!({ "order_id": order.id, "history": orders::history(&db, &order.id)? })).with_header("cache-control", "no-store"))
}

// ---------------------------------------------------------------- changing

/// Cancel an order: unpaid → its stock is released; paid → its units go
/// back on hand as `put_back` says (by default all: nothing was shipped) and
/// it is refunded in full through Stripe. Already cancelled → answered as is
/// (idempotent), restocking once more only when asked explicitly (a restock
/// that failed before).
/// A cancellation repeated (its answer was lost, or it failed after
/// cancelling): finish the release of an unpaid order's hold, or the
/// restock of a paid one, it owes. One the catalog cannot make now stays
/// owed for the orders sweep.
fn finish_owed_stock(db: &dyn Db, order: &Order) -> Result<(), ApiError> {
    match orders_core::owed_stock::settle(db, &order.id, &WitInventory) {
        Ok(_) => {}
        Err(SettleError::Unavailable(m)) => {
            println!("{}", json!({ "level": "warn", "service": "orders", "order_id": order.id, "stock_change_owed": m }))
        }
        Err(SettleError::Storage(e)) => return Err(e.into()),
    }
    restock::settle_owed(db, Some(&order.id), 10, &WitInventory)?;
    Ok(())
}

fn cancel_order(db: &dyn Db, order: Order, actor: &str, reason: &str, put_back: &Restock, explicit: bool) -> HandlerResult {
    match order.status {
        Status::Cancelled => {
            // A cancellation whose refund failed, or was never sent (the
            // request ended between the cancellation's commit and Stripe's
            // answer): asking again retries the refund, and then does what
            // it asks of the stock too (found in review: a retry that owed
            // the refund ignored its restock choice, and answered 200).
            let refund = if owes_cancellation_refund(db, &order)? {
                send_cancellation_refund(db, &StripeConfig::from_variables(), &order, actor)
                    .map_err(|e| cancellation_refund_error(e, "the refund failed again; it stays flagged for an admin"))
            } else {
                Ok(())
            };
            let stock = if explicit && *put_back != Restock::Nothing {
                restock_on_cancel(db, &order, put_back, actor, true)
            } else {
                finish_owed_stock(db, &order)
            };
            // The refund's error first: money matters more than the shelf.
            refund?;
            stock?;
            Ok(Reply::ok(&orders::load(db, &order.id)?.ok_or_else(|| ApiError::not_found("order"))?))
        }
        Status::PendingPayment => {
            let applied = lifecycle::apply(db, &order.id, &Outcome::Failed, Source::Shop, actor, &WitInventory).map_err(ApiError::from)?;
            let now = orders::load(db, &order.id)?.ok_or_else(|| ApiError::not_found("order"))?;
            // Paid meanwhile (its payment's transaction came first; found in
            // review: answered 200 with the order paid, to ship): cancelled
            // as a paid order is, refunded.
            if matches!(applied, Applied::Unchanged { .. }) && now.status != Status::PendingPayment && now.status.can_become(Status::Cancelled) {
                return cancel_order(db, now, actor, reason, put_back, explicit);
            }
            access::close_payment_objects(db, &order.id);
            Ok(Reply::ok(&now))
        }
        s if s.can_become(Status::Cancelled) => {
            let stripe = StripeConfig::from_variables();
            // A free order (total 0) took no money: nothing to refund, so
            // no Stripe is needed to cancel it.
            if !stripe.configured() && order.total.amount_minor > 0 {
                return Err(ApiError::unavailable("payments_not_configured", "refunds need Stripe to be configured"));
            }
            // The restock is owed from the moment the order is cancelled, in
            // the same transaction: whatever fails after, the debt is
            // recorded and the next attempt (or the sweep) settles it.
            let cancelled = transaction(db, |tx| {
                let cancelled = orders::transition(tx, &order, Status::Cancelled, actor, reason)?;
                restock::owe(tx, &order.id, &restock::cancel_operation(put_back), put_back, actor)?;
                Ok::<_, OrderError>(cancelled)
            })
            .map_err(ApiError::from)?;
            // Owed from here on: should this request end before the refund
            // is sent (or its failure flagged), the orders sweep sends it
            // (`refund_cancelled`), as does cancelling again.
            if let Err(e) = restock_on_cancel(db, &cancelled, put_back, actor, false) {
                let _ = send_cancellation_refund(db, &stripe, &cancelled, actor);
                return Err(e);
            }
            if let Err(e) = send_cancellation_refund(db, &stripe, &cancelled, actor) {
                return Err(cancellation_refund_error(e, "the order is cancelled but the refund failed; it is flagged for an admin"));
            }
            Ok(Reply::ok(&orders::load(db, &order.id)?.ok_or_else(|| ApiError::not_found("order"))?))
        }
        s => Err(ApiError::from(OrderError::Transition(orders_core::domain::InvalidTransition { from: s, to: Status::Cancelled }))),
    }
}

/// A cancelled order whose payment was captured and is not all refunded:
/// its cancellation's refund is owed (cancelling a paid order refunds it in
/// full, so nothing else leaves an order in that state).
fn owes_cancellation_refund(db: &dyn Db, order: &Order) -> Result<bool, ApiError> {
    if order.status != Status::Cancelled || order.refunded.amount_minor >= order.total.amount_minor {
        return Ok(false);
    }
    let payment = payments_core::summary::payment_for(db, &order.id)?;
    // Captured and not all refunded (the order's refunded amount, checked above).
    Ok(payment.is_some_and(|p| p.captured()))
}

/// Refund what is left of a cancelled order's payment, under the
/// cancellation's Idempotency-Key (`refund:<order>:cancel`), flagging the
/// order `refund_failed` when it fails. A refusal (4xx) moves the key to its
/// next generation: Stripe keeps a refused request's answer under its key
/// for 24 hours, so a retry under the same key would only be refused again
/// (found in review). 409 is another request sending it at this moment.
fn send_cancellation_refund(db: &dyn Db, stripe: &StripeConfig, order: &Order, actor: &str) -> Result<(), RefundError> {
    // A free order took no money (found in review: its cancellation
    // answered 502 and flagged it `refund_failed` for good).
    if order.total.amount_minor == 0 {
        return Ok(());
    }
    let key = format!("refund:{}:cancel", order.id);
    match refunds::refund_via_stripe(db, stripe, order, None, &key, actor, &WitInventory) {
        Ok(_) | Err(RefundError::TooMuch { .. }) => Ok(()),
        // Another request is sending this very refund now (Stripe answers a
        // concurrent request under the same key 409): not a failure, nothing
        // flagged (found in review: the order stayed flagged, and out of the
        // sweep's reach, though it was refunded).
        Err(e @ RefundError::Stripe(stripe::StripeError::Rejected { status: 409, .. })) => Err(e),
        Err(e) => {
            if let RefundError::Stripe(stripe::StripeError::Rejected { .. }) = &e {
                let _ = payments_core::stripe_keys::StripeKey::load(db, &key).and_then(|k| k.advance(db));
            }
            let _ = orders::flag(db, order, "refund_failed");
            Err(e)
        }
    }
}

/// The answer for a cancellation's refund that did not go through: 503 to
/// retry when another request is sending it at this moment, else 502 with
/// `message` (the order is flagged).
fn cancellation_refund_error(e: RefundError, message: &str) -> ApiError {
    match e {
        RefundError::Stripe(stripe::StripeError::Rejected { status: 409, .. }) => {
            ApiError::unavailable("refund_in_progress", "the refund is being sent by another request; ask again shortly").with_header("retry-after", "1")
        }
        e => ApiError::new(502, "refund_failed", message.to_string()).with_internal(format!("{e:?}")),
    }
}

/// The orders sweep's part: send the owed refunds of cancellations whose
/// request ended before sending or flagging them (cancelled more than two
/// minutes ago, captured, not all refunded, not flagged `refund_failed`:
/// a flagged one is for an admin, who retries by cancelling again).
fn refund_cancelled(db: &dyn Db, stripe: &StripeConfig, limit: i64) -> Result<usize, ApiError> {
    if !stripe.configured() {
        return Ok(0);
    }
    let before = clock::format_rfc3339(clock::unix_now() - 120);
    let rows = db.query(
        "SELECT o.id FROM orders o JOIN payments p ON p.order_id = o.id \
         WHERE o.status = 'cancelled' AND p.status IN ('paid', 'partially_refunded') AND o.refunded_minor < o.total_minor \
         AND o.flags NOT LIKE '%\"refund_failed\"%' AND o.updated_at < ? ORDER BY o.updated_at LIMIT ?",
        &[before.into(), limit.into()],
    )?;
    let mut sent = 0;
    for r in rows.iter() {
        let Some(order) = orders::load(db, &r.text("id")?)? else { continue };
        match send_cancellation_refund(db, stripe, &order, "sweep") {
            Ok(()) => sent += 1,
            // Stripe is down or limiting: the rest waits for the next call.
            Err(RefundError::Stripe(stripe::StripeError::Unavailable(_) | stripe::StripeError::ServerError { .. } | stripe::StripeError::RateLimited { .. })) => break,
            Err(_) => {}
        }
    }
    Ok(sent)
}

/// The units of a cancelled paid order go back on hand (operation
/// `cancel`, or one per set of lines chosen: each once, see
/// `restock::cancel_operation`). Once the order is cancelled nothing undoes that: a
/// restock the catalog could not make leaves the order flagged
/// `restock_failed` (cancelling again with `restock` retries it), and one it
/// refuses (the units were never sold: a payment whose stock was gone)
/// changes nothing. Only a retry on an order already cancelled reports a
/// refusal (409 `restock_refused`).
fn restock_on_cancel(db: &dyn Db, order: &Order, put_back: &Restock, actor: &str, retry: bool) -> Result<(), ApiError> {
    // A first cancellation owed the restock in its own transaction.
    let made = if retry {
        restock::restock(db, order, &restock::cancel_operation(put_back), put_back, actor, &WitInventory)
    } else {
        restock::settle(db, order, &restock::cancel_operation(put_back), put_back, actor, &WitInventory)
    };
    match made {
        Ok(_) => Ok(()),
        Err(RestockError::Refused(m)) if retry => Err(ApiError::new(409, "restock_refused", m)),
        Err(e) => {
            if !matches!(e, RestockError::Refused(_)) {
                orders::flag(db, order, "restock_failed")?;
            }
            println!("{}", json!({ "level": "warn", "service": "orders", "order_id": order.id, "restock_not_made": format!("{e:?}") }));
            Ok(())
        }
    }
}

pub fn cancel(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.caller()?;
    let db = open()?;
    let order = visible_order(&db, &caller, id)?;
    let actor = if caller.is_admin() && order.user_id != caller.user_id { format!("admin:{}", caller.user_id) } else { format!("user:{}", caller.user_id) };
    let reply = cancel_order(&db, order, &actor, "cancelled on request", &Restock::Everything, false);
    http_kit::nudge::notifications();
    reply
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
    reason: Option<String>,
    /// Cancelling a paid order: put its units back on hand (default true).
    restock: Option<bool>,
    restock_lines: Option<Vec<restock::RestockLine>>,
}

pub fn set_status(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.admin()?;
    let body: StatusBody = ctx.json()?;
    let to = Status::parse(body.status.trim()).ok_or_else(|| {
        ApiError::validation([("status".to_string(), json!("must be an order status"))].into_iter().collect())
    })?;
    if !matches!(to, Status::Processing | Status::Shipped | Status::Delivered | Status::Cancelled) {
        return Err(ApiError::new(422, "status_not_settable", format!("{to} is reached through payments, not set by hand")));
    }
    let reason = body.reason.map(|r| r.trim().chars().take(500).collect::<String>()).filter(|r| !r.is_empty()).unwrap_or_else(|| "set by admin".into());
    let db = open()?;
    let order = visible_order(&db, &caller, id)?;
    let actor = format!("admin:{}", caller.user_id);
    if to == Status::Cancelled {
        let explicit = body.restock.is_some() || body.restock_lines.is_some();
        let put_back = restock::choice(&order, body.restock, body.restock_lines, true)?;
        return cancel_order(&db, order, &actor, &reason, &put_back, explicit);
    }
    if body.restock.is_some() || body.restock_lines.is_some() {
        return Err(ApiError::validation([("restock".to_string(), json!("only when cancelling"))].into_iter().collect()));
    }
    let updated = transaction(&db, |tx| orders::transition(tx, &order, to, &actor, &reason)).map_err(ApiError::from)?;
    http_kit::nudge::notifications();
    Ok(Reply::ok(&updated))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackingBody {
    carrier: String,
    tracking_number: String,
}

pub fn set_tracking(ctx: &Ctx, id: &str) -> HandlerResult {
    let caller = ctx.admin()?;
    let body: TrackingBody = ctx.json()?;
    let mut p = FieldProblems::default();
    let carrier = p.check("carrier", text_input::bounded(&body.carrier, 100));
    let number = p.check("tracking_number", text_input::bounded(&body.tracking_number, 100));
    p.finish().map_err(ApiError::validation)?;
    let (Some(carrier), Some(number)) = (carrier, number) else { return Err(ApiError::internal("validated tracking missing")) };
    let db = open()?;
    let order = visible_order(&db, &caller, id)?;
    let actor = format!("admin:{}", caller.user_id);
    let updated = transaction(&db, |tx| -> Result<Order, ApiError> {
        let mut current = order.clone();
        if current.status == Status::Paid {
            current = orders::transition(tx, &current, Status::Processing, &actor, "tracking added").map_err(ApiError::from)?;
        }
        if current.status != Status::Shipped {
            orders::set_tracking(tx, &current.id, &carrier, &number)?;
            let reloaded = orders::load(tx, &current.id)?.ok_or_else(|| ApiError::not_found("order"))?;
            return orders::transition(tx, &reloaded, Status::Shipped, &actor, &format!("shipped with {carrier}")).map_err(ApiError::from);
        }
        orders::set_tracking(tx, &current.id, &carrier, &number)?;
        Ok(orders::load(tx, &current.id)?.ok_or_else(|| ApiError::not_found("order"))?)
    })?;
    http_kit::nudge::notifications();
    Ok(Reply::ok(&updated))
}

/// How long one sweep call keeps expiring orders before it answers with
/// `more: true`. Each expiry is a transaction plus a stock release; under
/// load a backlog of 200 took 9 s in one request (the soak saw it), holding
/// the scheduler and a database connection that long.
const SWEEP_BUDGET_MS: i64 = 1_000;

/// Expire unpaid orders past their expiry, for a scheduler. Protected by the
/// `sweep_secret` variable, sent as `X-Sweep-Secret`.
pub fn sweep(ctx: &Ctx) -> HandlerResult {
    http_kit::auth::require_shared_secret(ctx, "sweep_secret", "x-sweep-secret")?;
    let db = open()?;
    let started = clock::unix_millis();
    let within_budget = || clock::unix_millis() - started < SWEEP_BUDGET_MS;
    let due = orders::overdue(&db, clock::unix_now(), 200)?;
    // A full batch may have more behind it.
    let mut more = due.len() == 200;
    let mut expired = Vec::new();
    for id in due {
        if !within_budget() {
            more = true;
            break;
        }
        if let Applied::Changed { .. } = lifecycle::apply(&db, &id, &Outcome::Expired, Source::Shop, "sweep", &WitInventory).map_err(ApiError::from)? {
            expired.push(id);
        }
    }
    let stripe = StripeConfig::from_variables();
    // Close the payment objects of ended orders (these and any earlier ones
    // Stripe could not be reached for), and send the money owed back that
    // Stripe could not take at the time; left to the next call when the
    // expiries used up this one's time.
    let (closed, refunded, cancellations_refunded) = if within_budget() {
        // And finish sales and restocks whose request failed before the
        // catalog answered (sales first: a restock needs its sale).
        orders_core::owed_stock::settle_owed(&db, 50, &WitInventory)?;
        restock::settle_owed(&db, None, 50, &WitInventory)?;
        (close_at_stripe(&db, &stripe, None, 200)?, refunds::refund_owed(&db, &stripe, None, 50)?, refund_cancelled(&db, &stripe, 10)?)
    } else {
        more = true;
        (0, 0, 0)
    };
    if !expired.is_empty() || refunded > 0 || cancellations_refunded > 0 {
        http_kit::nudge::notifications();
    }
    // For GET /metrics: when the sweep last ran (an alert fires when it stops).
    storage::counters::bump(&db, orders_core::metrics::SWEEP, clock::unix_now())?;
    Ok(Reply::ok(&json!({ "expired": expired.len(), "order_ids": expired, "automatic_refunds": refunded, "cancellation_refunds": cancellations_refunded, "payment_objects_closed": closed, "more": more })))
}

pub fn health(ctx: &Ctx) -> HandlerResult {
    let db = schema::open_database().and_then(|db| storage::migrations::status(&db, schema::MIGRATION_SET.for_dialect(storage::Db::dialect(&db))));
    http_kit::health::report(ctx, "orders", vec![http_kit::health::database_check(schema::DATABASE_LABEL, db)])
}

