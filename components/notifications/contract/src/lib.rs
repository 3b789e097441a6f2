//! The notifications service's side of the `shop:notifications/privacy`
//! contract (the users service exports and erases an account's emails and
//! SMS through it) and of `shop:notifications/metrics` (its figures for
//! `GET /metrics`). Composed into the users and metrics components by Spin
//! (see `spin.toml`); it uses the notifications database through
//! `notifications-core`, and reads the users and orders outboxes, their
//! published integration point, as the notifications service does.

use exports::shop::notifications::metrics::{ChannelDeliveries, Guest as MetricsGuest, NotificationFigures, OutboxLag};
use exports::shop::notifications::privacy::{Guest, MessageLog};
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
    fn export_user(user_id: String, email: String) -> Result<MessageLog, Unavailable> {
        let db = notifications_core::schema::open_database().map_err(unavailable)?;
        let log = notifications_core::privacy::export_user(&db, &user_id, &email).map_err(unavailable)?;
        Ok(MessageLog { emails: log.emails.to_string(), sms: log.sms.to_string() })
    }

    fn erase_user(user_id: String, email: String, for_good: bool) -> Result<u32, Unavailable> {
        let db = notifications_core::schema::open_database().map_err(unavailable)?;
        notifications_core::privacy::erase_user(&db, &user_id, &email, &clock::now_rfc3339(), for_good).map_err(unavailable)
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
            deliveries: f.channels.into_iter().map(|c| ChannelDeliveries { channel: c.channel, pending: c.pending, failed: c.failed }).collect(),
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
