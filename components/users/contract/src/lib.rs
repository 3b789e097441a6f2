//! The users service's side of the `shop:users/addresses` contract:
//! checkout reads a signed-in user's saved address (by id, or the default
//! shipping address) to ship an order there. Composed into the checkout
//! component by Spin (see `spin.toml`); it reads the `users` database
//! through `users-core`, the same code as the address-book API. Read-only.

use exports::shop::users::addresses::{Guest, PostalAddress};
use shop::types::types::Unavailable;
use users_core::addresses::{self, Entry};

spin_sdk::wit_bindgen::generate!({
    world: "users-provider",
    path: "../../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

struct UsersContract;

fn unavailable(e: impl std::fmt::Display) -> Unavailable {
    Unavailable { message: e.to_string() }
}

fn wire(e: Entry) -> PostalAddress {
    let a = e.address;
    PostalAddress { name: a.name, line1: a.line1, line2: a.line2, city: a.city, region: a.region, postal_code: a.postal_code, country: a.country }
}

impl Guest for UsersContract {
    fn get_address(user_id: String, address_id: String) -> Result<Option<PostalAddress>, Unavailable> {
        let db = users_core::schema::open_database().map_err(unavailable)?;
        Ok(addresses::get(&db, &user_id, &address_id).map_err(unavailable)?.map(wire))
    }

    fn default_shipping_address(user_id: String) -> Result<Option<PostalAddress>, Unavailable> {
        let db = users_core::schema::open_database().map_err(unavailable)?;
        Ok(addresses::default_shipping(&db, &user_id).map_err(unavailable)?.map(wire))
    }
}

export!(UsersContract);
