//! The cart's side of the `shop:cart/cart` contract: checkout reads a
//! signed-in user's cart and clears it once the order exists; and
//! `shop:cart/metrics`, the expiry sweep's runs for `GET /metrics`. Composed into
//! the checkout component by Spin (see `spin.toml`); it uses the `carts`
//! key-value store through `cart-core`, the same code as the cart API.

use cart_core::cart::Owner;
use cart_core::store::{update, Create, KvCarts, Step, StoreError};
use exports::shop::cart::cart::{CartError, CartLine, CartSnapshot, Guest};
use shop::types::types::Unavailable;
use std::cell::OnceCell;
use std::rc::Rc;

spin_sdk::wit_bindgen::generate!({
    world: "cart-provider",
    path: "../../../wit",
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
});

struct CartContract;

fn unavailable(e: StoreError) -> CartError {
    CartError::Unavailable(Unavailable { message: e.to_string() })
}

impl From<StoreError> for CartError {
    fn from(e: StoreError) -> Self {
        unavailable(e)
    }
}

/// The carts store, opened once per instance: checkout reads the cart and
/// later clears it in the same request, with one `open` call. A failed open
/// is not kept, so the next call tries again.
fn store() -> Result<Rc<KvCarts>, CartError> {
    thread_local! {
        static OPENED: OnceCell<Rc<KvCarts>> = const { OnceCell::new() };
    }
    OPENED.with(|opened| {
        if let Some(s) = opened.get() {
            return Ok(s.clone());
        }
        let s = Rc::new(KvCarts::open(cart_core::STORE_LABEL).map_err(unavailable)?);
        let _ = opened.set(s.clone());
        Ok(s)
    })
}

impl Guest for CartContract {
    fn get_cart(user_id: String) -> Result<CartSnapshot, CartError> {
        let store = store()?;
        let cart = store.load(&Owner::User(user_id.clone()).key()).map_err(unavailable)?.unwrap_or_default();
        Ok(CartSnapshot {
            user_id,
            lines: cart.lines.iter().map(|l| CartLine { product_id: l.product_id.clone(), quantity: l.quantity }).collect(),
            version: cart.version,
            currency: cart.currency.clone(),
        })
    }

    fn clear_cart(user_id: String, version: u64) -> Result<(), CartError> {
        let store = store()?;
        let now = clock::unix_now();
        update(&*store, &Owner::User(user_id).key(), Create::Claim, |current| {
            let Some(mut cart) = current else {
                // No cart: version 0, and nothing to clear.
                return if version == 0 { Ok(Step::Keep(())) } else { Err(CartError::Changed) };
            };
            if cart.version != version {
                return Err(CartError::Changed);
            }
            cart.clear(now);
            Ok(Step::Write(cart, ()))
        })
        .map(|_| ())
    }
}

impl exports::shop::cart::metrics::Guest for CartContract {
    fn figures() -> Result<exports::shop::cart::metrics::CartFigures, Unavailable> {
        let store = store().map_err(|e| match e {
            CartError::Unavailable(u) => u,
            CartError::Changed => Unavailable { message: "the carts store changed".into() },
        })?;
        let (runs, last_run_at) = cart_core::expiry::runs(&*store).map_err(|e| Unavailable { message: e.to_string() })?;
        Ok(exports::shop::cart::metrics::CartFigures { sweep: shop::types::types::SweepRuns { runs, last_run_at } })
    }
}

export!(CartContract);
