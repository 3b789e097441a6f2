//! The notifications service's side of the `shop:notifications/privacy`
//! contract (the users service exports and erases an address's email log
//! through it) and of `shop:notifications/metrics` (its figures for
//! `GET /metrics`). Composed into the users and metrics components by Spin
//! (see `spin.toml`); it uses the notifications database through
//! `notifications-core`, and reads the users and orders outboxes, their
//! published integration point, as the notifications service does.

use exports::shop::notifications::metrics::{ChannelDeliveries, Guest as MetricsGuest, NotificationFigures, OutboxLag};
use exports::shop::notifications::privacy::Guest;
use shop::types::types::{SweepRuns, Unavailable};

spin_sdk::wit_bindgen::generate!({
    world: "notifications-provider",
    path: "../../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

struct NotificationsContract;

fn unavailable(e: impl std::fmt::Display) -> Unavailable {
    Unavailable { message: e.to_string() }
}

impl Guest for NotificationsContract {
    fn export_recipient(email: String) -> Result<String, Unavailable> {
        let db = notifications_core::schema::open_database().map_err(unavailable)?;
        Ok(notifications_core::privacy::export_recipient(&db, &email).map_err(unavailable)?.to_string())
    }

    fn erase_recipient(email: String) -> Result<u32, Unavailable> {
        let db = notifications_core::schema::open_database().map_err(unavailable)?;
        notifications_core::privacy::erase_recipient(&db, &email, &clock::now_rfc3339()).map_err(unavailable)
    }
}

impl MetricsGuest for NotificationsContract {
    /// For `GET /metrics` (`notifications_core::metrics`).
    fn figures() -> Result<NotificationFigures, Unavailable> {
        let db = notifications_core::schema::open_database().map_err(unavailable)?;
        let users = storage::ServiceDb::connect("users", "users_database_url").map_err(unavailable)?;
        let orders = storage::ServiceDb::connect("orders", "orders_database_url").map_err(unavailable)?;
        let f = notifications_core::metrics::notification_figures(&db, &[("users", &users as &dyn storage::Db), ("orders", &orders as &dyn storage::Db)], clock::unix_now())
            .map_err(unavailable)?;
        Ok(NotificationFigures {
            deliveries: vec![ChannelDeliveries { channel: notifications_core::metrics::EMAIL.into(), pending: f.pending, failed: f.failed }],
            outboxes: f
                .outboxes
                .into_iter()
                .map(|(outbox, oldest_undelivered_age_seconds)| OutboxLag { outbox, oldest_undelivered_age_seconds })
                .collect(),
            sweep: SweepRuns { runs: f.sweep.value, last_run_at: f.sweep.updated_at },
        })
    }
}

export!(NotificationsContract);
