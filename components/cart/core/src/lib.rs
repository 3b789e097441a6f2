//! The cart service, minus its entry points.
//!
//! - `cart`: the stored cart and the rules for changing it (no I/O);
//! - `pricing`: a cart priced live from catalog data, with flagged lines;
//! - `store`: carts in key-value with compare-and-swap, so concurrent
//!   changes to one cart are retried instead of overwriting each other;
//! - `merge`: a guest's cart merged into the account's at sign-in;
//! - `expiry`: the index and sweep that remove expired guest carts.

pub mod cart;
pub mod expiry;
pub mod merge;
pub mod pricing;
pub mod store;

#[cfg(test)]
mod properties;

/// The key-value store label holding carts.
pub const STORE_LABEL: &str = "carts";
