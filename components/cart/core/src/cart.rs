//! A cart as stored: product ids and quantities, never prices (prices are
//! always looked up live). Every stored change bumps `version` by one
//! (a new cart starts from its creation time, see `store.rs`),
//! which checkout passes back so a cart changed after it was read is not
//! cleared, and records its write id in `writes` (see `store.rs`: that is
//! how a write reported as failed is recognised as applied).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The most of one product a cart may hold.
pub const MAX_QUANTITY: u32 = 99;
/// The most distinct products in one cart.
pub const MAX_LINES: usize = 100;

/// Whose cart it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A signed-in user, by user id (from a verified token).
    User(String),
    /// A guest, by the SHA-256 of their cart token (the token itself is
    /// never stored, so a dump of the store cannot be used to open carts).
    Guest(String),
}

impl Owner {
    /// A guest owner from the token the client presented.
    pub fn guest(token: &str) -> Self {
        Self::Guest(Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The store key.
    pub fn key(&self) -> String {
        match self {
            Self::User(id) => format!("cart:user:{id}"),
            Self::Guest(hash) => format!("cart:guest:{hash}"),
        }
    }

    pub fn is_guest(&self) -> bool {
        matches!(self, Self::Guest(_))
    }
}

/// Is this a cart token we could have issued (`ct_` + 43 base64url chars)?
pub fn is_well_formed_token(token: &str) -> bool {
    token.len() == 46
        && token.starts_with("ct_")
        && token[3..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One stored line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub product_id: String,
    pub quantity: u32,
    /// Unix seconds; lines are shown in the order they were added.
    pub added_at: i64,
}

/// The stored cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cart {
    pub version: u64,
    /// The cart's currency, fixed by its first line; `None` when empty.
    pub currency: Option<String>,
    pub lines: Vec<Line>,
    /// Unix seconds of the last change (guest carts expire from here).
    pub updated_at: i64,
    /// The ids of the last [`crate::store::HISTORY`] writes, oldest first,
    /// maintained by `store::update` (absent in carts stored before it).
    #[serde(default)]
    pub writes: Vec<String>,
    /// A guest cart the expiry sweep took away (`expiry.rs`): nobody writes
    /// to it again (a change needing it is [`crate::store::StoreError::Missing`],
    /// so the guest gets a new token), which is what makes deleting the key
    /// afterwards safe.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

/// Why a change was refused (before any catalog check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartRule {
    QuantityOutOfRange { max: u32 },
    TooManyLines { max: usize },
    CurrencyMismatch { cart: String, product: String },
    NotInCart,
}

impl Cart {
    /// Has a guest cart been idle longer than `ttl_secs`?
    pub fn expired(&self, now: i64, ttl_secs: i64) -> bool {
        now - self.updated_at > ttl_secs
    }

    pub fn quantity_of(&self, product_id: &str) -> u32 {
        self.lines.iter().find(|l| l.product_id == product_id).map(|l| l.quantity).unwrap_or(0)
    }

    pub fn item_count(&self) -> u32 {
        self.lines.iter().map(|l| l.quantity).sum()
    }

    fn touch(&mut self, now: i64) {
        self.version += 1;
        self.updated_at = now;
        if self.lines.is_empty() {
            self.currency = None;
        }
    }

    /// Set a product's quantity (adding the line if needed). `currency` is
    /// the product's currency; one currency per cart.
    pub fn set(&mut self, product_id: &str, quantity: u32, currency: &str, now: i64) -> Result<(), CartRule> {
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(CartRule::QuantityOutOfRange { max: MAX_QUANTITY });
        }
        match &self.currency {
            Some(c) if c != currency && !(self.lines.len() == 1 && self.lines[0].product_id == product_id) => {
                return Err(CartRule::CurrencyMismatch { cart: c.clone(), product: currency.to_string() })
            }
            _ => {}
        }
        match self.lines.iter_mut().find(|l| l.product_id == product_id) {
            Some(line) => line.quantity = quantity,
            None => {
                if self.lines.len() >= MAX_LINES {
                    return Err(CartRule::TooManyLines { max: MAX_LINES });
                }
                self.lines.push(Line { product_id: product_id.to_string(), quantity, added_at: now });
            }
        }
        self.currency = Some(currency.to_string());
        self.touch(now);
        Ok(())
    }

    /// Remove a product's line.
    pub fn remove(&mut self, product_id: &str, now: i64) -> Result<(), CartRule> {
        let before = self.lines.len();
        self.lines.retain(|l| l.product_id != product_id);
        if self.lines.len() == before {
            return Err(CartRule::NotInCart);
        }
        self.touch(now);
        Ok(())
    }

    /// Empty the cart (the version still moves forward).
    pub fn clear(&mut self, now: i64) {
        self.lines.clear();
        self.touch(now);
    }

    /// Merge a guest cart into this one: quantities add up, each capped by
    /// `cap(product_id)` (the quantity and stock rules); lines in another
    /// currency cannot join and are returned as skipped.
    pub fn merge(&mut self, guest: &Cart, cap: impl Fn(&str) -> u32, now: i64) -> Vec<String> {
        let mut skipped = Vec::new();
        let guest_currency = guest.currency.clone().unwrap_or_default();
        if self.lines.is_empty() {
            self.currency = guest.currency.clone();
        }
        for g in &guest.lines {
            if self.currency.as_deref() != Some(guest_currency.as_str()) || self.lines.len() >= MAX_LINES && self.quantity_of(&g.product_id) == 0 {
                skipped.push(g.product_id.clone());
                continue;
            }
            let wanted = self.quantity_of(&g.product_id).saturating_add(g.quantity);
            let capped = wanted.min(cap(&g.product_id)).min(MAX_QUANTITY);
            match self.lines.iter_mut().find(|l| l.product_id == g.product_id) {
                Some(line) => line.quantity = capped.max(line.quantity),
                None if capped > 0 => self.lines.push(Line { quantity: capped, ..g.clone() }),
                None => skipped.push(g.product_id.clone()),
            }
        }
        self.touch(now);
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cart() -> Cart {
        Cart::default()
    }

    #[test]
    fn quantities_are_one_to_ninety_nine() {
        let mut c = cart();
        assert_eq!(c.set("p", 0, "USD", 1), Err(CartRule::QuantityOutOfRange { max: 99 }));
        assert_eq!(c.set("p", 100, "USD", 1), Err(CartRule::QuantityOutOfRange { max: 99 }));
        c.set("p", 99, "USD", 1).unwrap();
        assert_eq!(c.item_count(), 99);
        assert_eq!(c.version, 1);
    }

    #[test]
    fn one_currency_per_cart() {
        let mut c = cart();
        c.set("a", 1, "USD", 1).unwrap();
        assert_eq!(c.set("b", 1, "EUR", 2), Err(CartRule::CurrencyMismatch { cart: "USD".into(), product: "EUR".into() }));
        // The only line may change currency when its product's price did.
        c.set("a", 2, "EUR", 3).unwrap();
        assert_eq!(c.currency.as_deref(), Some("EUR"));
        c.remove("a", 4).unwrap();
        assert_eq!(c.currency, None, "an empty cart takes any currency");
        c.set("b", 1, "JPY", 5).unwrap();
    }

    #[test]
    fn remove_and_clear() {
        let mut c = cart();
        c.set("a", 1, "USD", 1).unwrap();
        assert_eq!(c.remove("zzz", 2), Err(CartRule::NotInCart));
        c.clear(3);
        assert!(c.lines.is_empty());
        assert_eq!(c.version, 2);
    }

    #[test]
    fn merging_adds_quantities_under_the_caps() {
        let mut user = cart();
        user.set("a", 2, "USD", 1).unwrap();
        let mut guest = cart();
        guest.set("a", 3, "USD", 1).unwrap();
        guest.set("b", 98, "USD", 1).unwrap();
        guest.lines.push(Line { product_id: "c".into(), quantity: 5, added_at: 1 });
        let skipped = user.merge(&guest, |p| if p == "a" { 4 } else if p == "c" { 0 } else { 1000 }, 2);
        assert_eq!(user.quantity_of("a"), 4, "capped by stock");
        assert_eq!(user.quantity_of("b"), 98);
        assert_eq!(skipped, vec!["c".to_string()], "nothing available to merge");
    }

    #[test]
    fn merging_never_lowers_a_users_own_quantity() {
        let mut user = cart();
        user.set("a", 5, "USD", 1).unwrap();
        let mut guest = cart();
        guest.set("a", 1, "USD", 1).unwrap();
        user.merge(&guest, |_| 2, 2);
        assert_eq!(user.quantity_of("a"), 5);
    }

    #[test]
    fn merging_skips_other_currencies() {
        let mut user = cart();
        user.set("a", 1, "USD", 1).unwrap();
        let mut guest = cart();
        guest.set("b", 1, "EUR", 1).unwrap();
        assert_eq!(user.merge(&guest, |_| 99, 2), vec!["b".to_string()]);
        let mut empty = cart();
        assert!(empty.merge(&guest, |_| 99, 2).is_empty());
        assert_eq!(empty.currency.as_deref(), Some("EUR"));
    }

    #[test]
    fn tokens_and_keys() {
        let token = format!("ct_{}", "A".repeat(43));
        assert!(is_well_formed_token(&token));
        assert!(!is_well_formed_token("ct_short") && !is_well_formed_token(&format!("xx_{}", "A".repeat(43))));
        let key = Owner::guest(&token).key();
        assert!(key.starts_with("cart:guest:") && !key.contains(&token));
        assert_eq!(Owner::User("u1".into()).key(), "cart:user:u1");
    }

    #[test]
    fn guest_expiry() {
        let c = Cart { updated_at: 100, ..cart() };
        assert!(!c.expired(100 + 86400, 86400));
        assert!(c.expired(101 + 86400, 86400));
    }
}
