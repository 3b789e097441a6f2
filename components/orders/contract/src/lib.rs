//! The orders service's side of the `shop:orders/privacy` contract (the
//! users service exports and erases a customer's order data through it) and
//! of `shop:orders/metrics` (checkout's figures for `GET /metrics`).
//! Composed into the users and metrics components by Spin (see
//! `spin.toml`); it uses the orders database through `orders-core` and
//! `payments-core`, the same code as the orders and payments APIs.

use exports::shop::orders::metrics::{Guest as MetricsGuest, OrderFigures, OwedChanges, StatusCount};
use exports::shop::orders::privacy::{EraseError, Guest};
use shop::types::types::{Money, SweepRuns, Unavailable};

spin_sdk::wit_bindgen::generate!({
    world: "orders-provider",
    path: "../../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

struct OrdersContract;

fn unavailable(e: impl std::fmt::Display) -> Unavailable {
    Unavailable { message: e.to_string() }
}

impl Guest for OrdersContract {
    fn export_user(user_id: String) -> Result<String, Unavailable> {
        let db = orders_core::schema::open_database().map_err(unavailable)?;
        Ok(orders_core::privacy::export_user(&db, &user_id, &payments_core::privacy::add_payments).map_err(unavailable)?.to_string())
    }

    fn erase_user(user_id: String) -> Result<u32, EraseError> {
        let db = orders_core::schema::open_database().map_err(|e| EraseError::Unavailable(unavailable(e)))?;
        match orders_core::privacy::erase_user(&db, &user_id, clock::unix_now()) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(ids)) => Err(EraseError::InProgress(ids)),
            Err(e) => Err(EraseError::Unavailable(unavailable(e))),
        }
    }
}

impl MetricsGuest for OrdersContract {
    /// For `GET /metrics`: seven reads (`orders_core::metrics`).
    fn figures() -> Result<OrderFigures, Unavailable> {
        let db = orders_core::schema::open_database().map_err(unavailable)?;
        let f = orders_core::metrics::order_figures(&db).map_err(unavailable)?;
        Ok(OrderFigures {
            by_status: f.by_status.into_iter().map(|(status, orders)| StatusCount { status: status.to_string(), orders }).collect(),
            paid_revenue: f.paid_revenue.into_iter().map(|(currency, amount_minor)| Money { amount_minor, currency }).collect(),
            flagged: f.flagged,
            sweep: SweepRuns { runs: f.sweep.value, last_run_at: f.sweep.updated_at },
            webhook_signature_failures: f.webhook_signature_failures,
            owed: [("stock", f.owed_stock), ("restock", f.owed_restocks)]
                .into_iter()
                .map(|(change, o)| OwedChanges { change: change.to_string(), owed: o.count, oldest_at: o.oldest_at })
                .collect(),
        })
    }
}

export!(OrdersContract);
