//! Whose cart a request addresses.
//!
//! A signed-in user (valid bearer token) always gets their own cart. A guest
//! presents the opaque token from the `X-Cart-Token` header; a guest's first
//! change issues a fresh token (32 random bytes), returned in the same
//! header. Tokens are only ever issued by the server: a well-formed token
//! that names no cart is replaced by a new one rather than adopted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cart_core::cart::{is_well_formed_token, Owner};
use http_kit::{ApiError, Ctx};

pub const TOKEN_HEADER: &str = "x-cart-token";

/// The caller, as far as carts are concerned.
pub struct Identity {
    /// The signed-in user's cart, if signed in.
    pub user: Option<Owner>,
    /// The guest token presented (well-formed), if any.
    pub guest_token: Option<String>,
}

pub fn identify(ctx: &Ctx) -> Result<Identity, ApiError> {
    // A header that is sent must hold a token: an empty one is refused too.
    let guest_token = match ctx.header(TOKEN_HEADER).map(str::trim) {
        Some(t) if is_well_formed_token(t) => Some(t.to_string()),
        Some(_) => return Err(ApiError::invalid_parameter("X-Cart-Token", "is not a cart token issued by this shop")),
        None => None,
    };
    let user = match ctx.header("authorization") {
        Some(_) => Some(Owner::User(ctx.caller()?.user_id)),
        None => None,
    };
    Ok(Identity { user, guest_token })
}

/// A new guest cart token.
pub fn new_token() -> Result<String, ApiError> {
    Ok(format!("ct_{}", URL_SAFE_NO_PAD.encode(http_kit::ids::random_bytes(32)?)))
}

/// Guest carts expire after this much inactivity: `guest_cart_idle_ttl`,
/// a number with a unit (`30d`, `12h`, `90m`, `45s`); 30 days by default.
pub fn guest_ttl_secs() -> i64 {
    spin_sdk::variables::get("guest_cart_idle_ttl").ok().and_then(|v| http_kit::settings::duration_secs(&v)).unwrap_or(30 * 86400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_well_formed_and_unique() {
        let a = new_token().unwrap();
        assert!(is_well_formed_token(&a));
        assert_ne!(a, new_token().unwrap());
    }
}
