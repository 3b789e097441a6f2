//! A customer's data in the orders database, for export and erasure (the
//! users service asks through the `shop:orders/privacy` contract).
//!
//! Personal data here is the shipping address of each order (and its copy
//! in the outbox events), and the buyer's name and billing address on the
//! invoices and credit notes of paid orders. Erasure removes the first and
//! keeps everything the shop must keep for its books: the orders, their
//! lines and amounts, history, payments and refunds, under the customer's
//! opaque user id, and the invoices as they were issued (an issued invoice
//! is a record the seller must keep unchanged).

use crate::orders;
use serde_json::{json, Value as Json};
use storage::{transaction, Db, DbError, Dialect};

/// Statuses in which an order still needs its customer: being paid, or
/// paid and not yet delivered.
const IN_PROGRESS: &str = "('paid', 'processing', 'shipped', 'partially_refunded')";

/// Every order of the user, newest first, with its history and whatever
/// `more` adds to each (the orders contract adds its payment objects and
/// automatic refunds from `payments-core`).
pub fn export_user(db: &dyn Db, user_id: &str, more: &dyn Fn(&dyn Db, &str, &mut Json) -> Result<(), DbError>) -> Result<Json, DbError> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let (page, total) = orders::list_for_user(db, user_id, 100, offset)?;
        let n = page.len() as i64;
        for order in page {
            let history = orders::history(db, &order.id)?;
            let mut o = json!(order);
            o["history"] = json!(history);
            let mut documents: Vec<Json> = crate::invoices::invoice_of(db, &order.id)?.iter().map(|d| json!(d)).collect();
            documents.extend(crate::invoices::credit_notes_of(db, &order.id)?.iter().map(|d| json!(d)));
            o["invoices"] = Json::Array(documents);
            o["disputes"] = json!(crate::disputes::of_order(db, &order.id)?);
            more(db, &order.id, &mut o)?;
            out.push(o);
        }
        offset += n;
        if n == 0 || offset >= total {
            break;
        }
    }
    Ok(Json::Array(out))
}

/// Erase the user's shipping addresses, unless an order is still in
/// progress (`Err(ids)`, nothing changed). An unpaid order whose hold has
/// not lapsed counts as in progress too. Returns how many orders it touched.
///
/// The account is recorded as erased ([`account_erased`]), so an order its
/// still-valid access token places afterwards is refused. Placing an order
/// records an event, which takes the outbox's lock; this takes it first
/// ([`storage::outbox::lock`]). So on Postgres an order being placed either
/// commits before (and is seen here: in progress, nothing erased) or
/// checks after this commits (and sees the account erased); on SQLite the
/// write transactions are one at a time anyway.
///
/// On Postgres it locks the account's orders (in id order) before that, as
/// every transaction that records an order's event locks the order first
/// and takes the outbox's lock last: an admin's refund of one of these
/// orders, racing the erasure, then waits or is waited for, instead of the
/// two waiting for each other (a deadlock, which Postgres breaks by
/// aborting one).
pub fn erase_user(db: &dyn Db, user_id: &str, now: i64) -> Result<Result<u32, Vec<String>>, DbError> {
    transaction(db, |tx| {
        if tx.dialect() == Dialect::Postgres {
            tx.query("SELECT id FROM orders WHERE user_id = ? ORDER BY id FOR UPDATE", &[user_id.into()])?;
        }
        storage::outbox::lock(tx)?;
        let busy = tx.query(
            &format!(
                "SELECT id FROM orders WHERE user_id = ? AND (status IN {IN_PROGRESS} OR (status = 'pending_payment' AND expires_at > ?)) ORDER BY id"
            ),
            &[user_id.into(), now.into()],
        )?;
        if !busy.is_empty() {
            return Ok(Err(busy.iter().map(|r| r.text("id")).collect::<Result<_, _>>()?));
        }
        tx.execute(
            "INSERT INTO erased_accounts (user_id, erased_at) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
            &[user_id.into(), now.into()],
        )?;
        let touched = tx.query(
            "UPDATE orders SET shipping_address = NULL WHERE user_id = ? AND shipping_address IS NOT NULL RETURNING id",
            &[user_id.into()],
        )?;
        // The outbox events carry the order as it was, address included.
        // Each is keyed by its order (`<order>`, or `<order>:<detail>` for a
        // refund's or a flag's), or, for an automatic refund's, by the
        // PaymentIntent it returned (found in review: only the first kind
        // was cleaned). Each key is looked up by the outbox's index on it
        // (orders migration 13), not by reading the whole outbox under its
        // lock, as before.
        let orders: Vec<String> =
            tx.query("SELECT id FROM orders WHERE user_id = ?", &[user_id.into()])?.iter().map(|r| r.text("id")).collect::<Result<_, _>>()?;
        let intents: Vec<String> = tx
            .query("SELECT a.payment_intent FROM automatic_refunds a JOIN orders r ON r.id = a.order_id WHERE r.user_id = ?", &[user_id.into()])?
            .iter()
            .map(|r| r.text("payment_intent"))
            .collect::<Result<_, _>>()?;
        // Byte order on both stores (SQLite's default; "C" on Postgres, as the index is).
        let key = if tx.dialect() == Dialect::Postgres { "aggregate_id COLLATE \"C\"" } else { "aggregate_id" };
        let mut rows = Vec::new();
        for order in &orders {
            // `<order>` and `<order>:…`: ';' follows ':'.
            let found = tx.query(
                &format!("SELECT id, aggregate_id, payload FROM outbox WHERE {key} >= ? AND {key} < ?"),
                &[order.as_str().into(), format!("{order};").into()],
            )?;
            for r in found.iter() {
                let aggregate = r.text("aggregate_id")?;
                if aggregate == *order || aggregate.strip_prefix(order.as_str()).is_some_and(|rest| rest.starts_with(':')) {
                    rows.push((r.int("id")?, r.text("payload")?));
                }
            }
        }
        for intent in &intents {
            for r in tx.query(&format!("SELECT id, payload FROM outbox WHERE {key} = ?"), &[intent.as_str().into()])?.iter() {
                rows.push((r.int("id")?, r.text("payload")?));
            }
        }
        for (id, payload) in rows {
            let mut payload: Json = serde_json::from_str(&payload).unwrap_or(Json::Null);
            // Only the account's own orders' events (a PaymentIntent id
            // could in principle look like another key).
            if payload["order_id"].as_str().is_some_and(|id| !orders.iter().any(|o| o == id)) {
                continue;
            }
            let Some(order) = payload.get_mut("order").and_then(Json::as_object_mut) else { continue };
            if order.remove("shipping_address").is_some() {
                tx.execute("UPDATE outbox SET payload = ? WHERE id = ?", &[payload.to_string().into(), id.into()])?;
            }
        }
        Ok(Ok(touched.len() as u32))
    })
}

/// Whether the account's data was erased ([`erase_user`]): its orders may
/// no longer be placed. Inside the placing transaction, after the order's
/// event is recorded (see [`erase_user`] for why after).
pub fn account_erased(tx: &dyn Db, user_id: &str) -> Result<bool, DbError> {
    Ok(!tx.query("SELECT 1 AS x FROM erased_accounts WHERE user_id = ?", &[user_id.into()])?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Address;
    use crate::orders::{insert, NewOrder, OrderLine};
    use money::{Currency, Money};
    use storage::native::MemDb;

    fn db_with_order(status: &str, expires_at: i64) -> MemDb {
        let db = MemDb::new();
        storage::migrations::migrate(&db, crate::schema::MIGRATIONS).unwrap();
        let usd = Currency::parse("USD").unwrap();
        let line = OrderLine { product_id: "p".into(), sku: "S".into(), name: "N".into(), unit_price: Money::new(100, usd), quantity: 1, line_total: Money::new(100, usd) };
        let address = Address { name: "Ann".into(), line1: "1 Main St".into(), line2: None, city: "X".into(), region: None, postal_code: "1".into(), country: "US".into() };
        let order = insert(&db, &NewOrder { id: "o1".into(), user_id: "u".into(), currency: usd, lines: vec![line], shipping_address: Some(address), expires_at, cart_version: None }, "u").unwrap();
        orders::record_event(&db, "order.paid", "o1", &json!({ "order_id": "o1", "order": order })).unwrap();
        db.execute("UPDATE orders SET status = ? WHERE id = 'o1'", &[status.into()]).unwrap();
        db
    }

    #[test]
    fn orders_in_progress_stop_the_erasure() {
        let db = db_with_order("shipped", 0);
        assert_eq!(erase_user(&db, "u", 100).unwrap(), Err(vec!["o1".to_string()]));
        assert!(!account_erased(&db, "u").unwrap(), "a refused erasure leaves the account usable");
        let db = db_with_order("pending_payment", 200);
        assert_eq!(erase_user(&db, "u", 100).unwrap(), Err(vec!["o1".to_string()]), "still payable");
        assert_eq!(erase_user(&db, "u", 300).unwrap(), Ok(1), "its hold lapsed");
    }

    /// The lock order every order transaction keeps: the order's row, then
    /// the outbox's lock.
    #[test]
    fn erasure_locks_the_orders_before_the_outbox_on_postgres() {
        let db = storage::native::Recorder::postgres();
        erase_user(&db, "u", 100).unwrap().unwrap();
        let statements = db.statements();
        let at = |needle: &str| statements.iter().position(|s| s.contains(needle)).unwrap_or_else(|| panic!("no {needle}: {statements:#?}"));
        assert!(at("FROM orders WHERE user_id = ? ORDER BY id FOR UPDATE") < at("pg_advisory_xact_lock"), "{statements:#?}");
        assert!(at("pg_advisory_xact_lock") < at("UPDATE orders SET shipping_address"), "{statements:#?}");
    }

    #[test]
    fn erasure_removes_addresses_and_keeps_the_books() {
        let db = db_with_order("delivered", 0);
        // A refund's event, keyed `<order>:<refunded>`, and an automatic
        // refund's, keyed by its PaymentIntent, carry the order too.
        let order = orders::load(&db, "o1").unwrap().unwrap();
        orders::record_event(&db, "order.refunded", "o1:100", &json!({ "order_id": "o1", "order": order })).unwrap();
        db.execute(
            "INSERT INTO automatic_refunds (payment_intent, order_id, amount_minor, currency, reason, status, created_at, updated_at) \
             VALUES ('pi_1', 'o1', 100, 'USD', 'paid_twice', 'refunded', 't', 't')",
            &[],
        )
        .unwrap();
        orders::record_event(&db, "order.payment_returned", "pi_1", &json!({ "order_id": "o1", "order": order })).unwrap();
        // Another customer's order whose key starts with this one's.
        let other = json!({ "order_id": "o10", "order": { "id": "o10", "shipping_address": { "line1": "2 Other St" } } });
        orders::record_event(&db, "order.placed", "o10", &other).unwrap();
        assert_eq!(export_user(&db, "u", &|_, _, _| Ok(())).unwrap()[0]["shipping_address"]["name"], "Ann");
        assert_eq!(erase_user(&db, "u", 100).unwrap(), Ok(1));
        let exported = export_user(&db, "u", &|_, _, _| Ok(())).unwrap();
        assert_eq!(exported.as_array().unwrap().len(), 1, "the order stays");
        assert!(exported[0]["shipping_address"].is_null());
        assert_eq!(exported[0]["total"]["amount_minor"], 100);
        let payloads = db.query("SELECT payload FROM outbox", &[]).unwrap();
        assert!(payloads.iter().all(|r| !r.text("payload").unwrap().contains("1 Main St")));
        assert_eq!(payloads.iter().filter(|r| r.text("payload").unwrap().contains("2 Other St")).count(), 1, "another's order keeps its address");
        assert_eq!(erase_user(&db, "u", 100).unwrap(), Ok(0), "idempotent");
        assert!(account_erased(&db, "u").unwrap() && !account_erased(&db, "someone else").unwrap());
    }
}
