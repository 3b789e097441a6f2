//! The notifications service's side of the `shop:notifications/privacy`
//! contract: the users service exports and erases an address's email log
//! through it. Composed into the users component by Spin (see
//! `spin.toml`); it uses the notifications database through
//! `notifications-core`.

use exports::shop::notifications::privacy::Guest;
use shop::types::types::Unavailable;

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

export!(NotificationsContract);
