//! Property tests of what the cart reads from requests and its store:
//! `X-Cart-Token` values, stored carts (whatever bytes are under a key),
//! and any sequence of changes keeping the cart's rules.

use crate::cart::{is_well_formed_token, Cart, CartRule, Owner, MAX_LINES, MAX_QUANTITY};
use crate::store::{decode, StoreError};
use proptest::collection::vec;
use proptest::prelude::*;


#[derive(Debug, Clone)]
enum Change {
    Set(u8, u32, &'static str),
    Remove(u8),
    Clear,
    Merge(Vec<(u8, u32)>, &'static str, u32),
}

fn change() -> impl Strategy<Value = Change> {
    let currency = proptest::sample::select(vec!["USD", "EUR", "JPY"]);
    prop_oneof![
        4 => (any::<u8>(), 0u32..120, currency.clone()).prop_map(|(p, q, c)| Change::Set(p, q, c)),
        2 => any::<u8>().prop_map(Change::Remove),
        1 => Just(Change::Clear),
        1 => (vec((any::<u8>(), 1u32..99), 0..5), currency, 0u32..120).prop_map(|(l, c, cap)| Change::Merge(l, c, cap)),
    ]
}

proptest! {
    #[test]
    fn any_token_header_is_well_formed_or_not(raw in prop_oneof![".{0,60}", "ct_[A-Za-z0-9_\\-]{40,46}", "ct_.{43}"]) {
        if is_well_formed_token(&raw) {
            prop_assert!(raw.len() == 46 && raw.starts_with("ct_"));
            let key = Owner::guest(&raw).key();
            prop_assert!(key.starts_with("cart:guest:") && key.len() == "cart:guest:".len() + 64 && !key.contains(&raw[3..]));
        }
    }

    #[test]
    fn any_stored_bytes_are_a_cart_or_corrupt(bytes in prop_oneof![vec(any::<u8>(), 0..100), ".{0,60}".prop_map(String::into_bytes),
        r#"\{"version":[0-9-]{1,25},"currency":(null|"[A-Z]{3}"),"lines":\[\],"updated_at":[0-9-]{1,22}(,"removed":(true|false|1))?\}"#.prop_map(String::into_bytes)]) {
        match decode(&bytes) {
            Ok(_) | Err(StoreError::Corrupt(_)) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}

proptest! {
    /// Whatever the requests, a cart keeps its rules: 1 to 99 of a product,
    /// at most 100 lines, one currency exactly when it has lines, the
    /// version moving forward by one per stored change; and it survives
    /// the store (encode, decode) unchanged.
    #[test]
    fn any_sequence_of_changes_keeps_the_rules(changes in vec(change(), 0..40)) {
        let mut cart = Cart::default();
        for (now, ch) in changes.into_iter().enumerate() {
            let before = cart.clone();
            let now = now as i64;
            let changed = match ch {
                Change::Set(p, q, c) => match cart.set(&format!("p{p}"), q, c, now) {
                    Ok(()) => true,
                    Err(CartRule::QuantityOutOfRange { .. }) => { prop_assert!(!(1..=MAX_QUANTITY).contains(&q)); false }
                    Err(CartRule::TooManyLines { .. }) => { prop_assert_eq!(before.lines.len(), MAX_LINES); false }
                    Err(CartRule::CurrencyMismatch { .. }) => { prop_assert!(before.currency.as_deref() != Some(c)); false }
                    Err(CartRule::NotInCart) => { prop_assert!(false, "set never says not in cart"); false }
                },
                Change::Remove(p) => cart.remove(&format!("p{p}"), now).is_ok(),
                Change::Clear => { cart.clear(now); true }
                Change::Merge(lines, c, cap) => {
                    let mut guest = Cart::default();
                    for (p, q) in lines {
                        let _ = guest.set(&format!("p{p}"), q, c, now);
                    }
                    cart.merge(&guest, |_| cap, now);
                    true
                }
            };
            if changed {
                prop_assert_eq!(cart.version, before.version + 1);
            } else {
                prop_assert_eq!(&cart, &before, "a refused change leaves the cart as it was");
            }
            prop_assert!(cart.lines.len() <= MAX_LINES);
            prop_assert!(cart.lines.iter().all(|l| (1..=MAX_QUANTITY).contains(&l.quantity)));
            prop_assert_eq!(cart.currency.is_some(), !cart.lines.is_empty());
            let mut ids: Vec<&str> = cart.lines.iter().map(|l| l.product_id.as_str()).collect();
            ids.sort();
            ids.dedup();
            prop_assert_eq!(ids.len(), cart.lines.len(), "one line per product");
        }
        let stored = serde_json::to_vec(&cart).unwrap();
        prop_assert_eq!(decode(&stored).unwrap(), cart);
    }
}
