//! Merging a guest's cart into the account's cart when the guest signs in.

use crate::cart::{Cart, MAX_QUANTITY};
use crate::pricing::CatalogProduct;
use crate::store::{update, Create, Kv, Step, StoreError};

/// What a merge did: how many guest lines joined, and the products that
/// could not (another currency, no stock, inactive, no room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub merged: usize,
    pub skipped: Vec<String>,
}

/// Why a merge failed; the guest cart keeps its lines either way.
#[derive(Debug)]
pub enum MergeError<E> {
    Store(StoreError),
    /// The products' current data could not be looked up.
    Lookup(E),
}

impl<E> From<StoreError> for MergeError<E> {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Move the guest cart at `guest_key` into the account's cart at
/// `user_key`: quantities add, capped by the quantity limit and the stock
/// `lookup` reports. `None` when the guest cart is absent, empty or expired.
///
/// The guest cart is claimed first by emptying it with compare-and-swap,
/// so two concurrent sign-ins merge it once. It is left empty rather than
/// deleted: key-value has no conditional delete, and a plain one could
/// erase a change made to it meanwhile. Should anything fail after the
/// claim (the lookup, the account cart's write), the claimed lines are put
/// back into the guest cart before the error is returned, so the next
/// request merges them instead of finding the guest cart empty — except
/// when the account cart's write is unconfirmed (it may have landed), which
/// keeps them from being added twice.
pub fn merge_guest<S: Kv, E>(
    store: &S,
    guest_key: &str,
    user_key: &str,
    now: i64,
    ttl: i64,
    lookup: impl FnOnce(&[String]) -> Result<Vec<CatalogProduct>, E>,
) -> Result<Option<Merged>, MergeError<E>> {
    let (claimed, _) = update(store, guest_key, Create::Never, |current| -> Result<Step<Option<Cart>>, StoreError> {
        match current {
            Some(c) if !c.lines.is_empty() && !c.expired(now, ttl) => {
                let mut emptied = c.clone();
                emptied.clear(now);
                Ok(Step::Write(emptied, Some(c)))
            }
            _ => Ok(Step::Keep(None)),
        }
    })?;
    let Some(guest) = claimed else { return Ok(None) };
    let moved = move_lines(store, &guest, user_key, now, lookup);
    match &moved {
        // The account's cart may hold them already: given back as well, the
        // next merge would add them twice.
        Err(MergeError::Store(StoreError::Unconfirmed)) => {
            println!("{}", serde_json::json!({ "level": "warn", "service": "cart", "guest_cart_merge_unconfirmed": guest.lines.len() }));
        }
        Err(_) => give_back(store, guest_key, &guest, now),
        Ok(_) => {}
    }
    moved.map(Some)
}

fn move_lines<S: Kv, E>(
    store: &S,
    guest: &Cart,
    user_key: &str,
    now: i64,
    lookup: impl FnOnce(&[String]) -> Result<Vec<CatalogProduct>, E>,
) -> Result<Merged, MergeError<E>> {
    let ids: Vec<String> = guest.lines.iter().map(|l| l.product_id.clone()).collect();
    let products = lookup(&ids).map_err(MergeError::Lookup)?;
    let cap = |id: &str| {
        products
            .iter()
            .find(|p| p.id == id && p.active)
            .map(|p| p.available.clamp(0, MAX_QUANTITY as i64) as u32)
            .unwrap_or(0)
    };
    let (skipped, _) = update(store, user_key, Create::Claim, |current| -> Result<Step<Vec<String>>, StoreError> {
        let mut cart = current.unwrap_or_default();
        let skipped = cart.merge(guest, cap, now);
        Ok(Step::Write(cart, skipped))
    })?;
    Ok(Merged { merged: guest.lines.len() - skipped.len(), skipped })
}

/// Put claimed lines back into the guest cart (adding to whatever the guest
/// added since). If even that fails, the lines are lost and the request's
/// own error is what the client sees; the log says so.
fn give_back<S: Kv>(store: &S, guest_key: &str, guest: &Cart, now: i64) {
    let restored = update(store, guest_key, Create::Never, |current| -> Result<Step<Vec<String>>, StoreError> {
        let mut cart = current.unwrap_or_default();
        let skipped = cart.merge(guest, |_| MAX_QUANTITY, now);
        Ok(Step::Write(cart, skipped))
    });
    match restored {
        Err(e) => println!("{}", serde_json::json!({ "level": "error", "service": "cart", "guest_cart_lines_lost": guest.lines.len(), "error": e.to_string() })),
        // The guest filled the emptied cart in another currency meanwhile:
        // these lines could not go back (found in review: dropped unsaid).
        Ok((skipped, _)) if !skipped.is_empty() => {
            println!("{}", serde_json::json!({ "level": "warn", "service": "cart", "guest_cart_lines_not_given_back": skipped }));
        }
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sim::SpinSqlite;
    use money::{Currency, Money};

    fn product(id: &str, available: i64) -> CatalogProduct {
        CatalogProduct { id: id.into(), sku: id.into(), name: id.into(), unit_price: Money::new(100, Currency::parse("USD").unwrap()), available, active: true }
    }

    fn guest_with(store: &SpinSqlite, lines: &[(&str, u32)]) {
        update(store, "guest", Create::NewKey, |_| -> Result<Step<()>, StoreError> {
            let mut c = Cart::default();
            for (p, q) in lines {
                c.set(p, *q, "USD", 1).unwrap();
            }
            Ok(Step::Write(c, ()))
        })
        .unwrap();
    }

    fn lines(store: &SpinSqlite, key: &str) -> Vec<(String, u32)> {
        let stored = store.get(key).unwrap().map(|b| crate::store::decode(&b).unwrap());
        stored.map(|c| c.lines.iter().map(|l| (l.product_id.clone(), l.quantity)).collect()).unwrap_or_default()
    }

    #[test]
    fn a_merge_moves_the_lines_once() {
        let store = SpinSqlite::default();
        guest_with(&store, &[("a", 2), ("b", 5)]);
        let merged = merge_guest(&store, "guest", "user", 10, 3600, |_| Ok::<_, ()>(vec![product("a", 9), product("b", 3)])).unwrap();
        assert_eq!(merged, Some(Merged { merged: 2, skipped: vec![] }));
        assert_eq!(lines(&store, "user"), [("a".to_string(), 2), ("b".to_string(), 3)], "capped by stock");
        assert!(lines(&store, "guest").is_empty());
        assert_eq!(merge_guest(&store, "guest", "user", 11, 3600, |_| Ok::<_, ()>(vec![])).unwrap(), None, "once");
    }

    /// Found in review: the guest cart was emptied before the lookup, so a
    /// lookup that failed (the catalog unavailable) lost its lines for good.
    #[test]
    fn a_failed_lookup_leaves_the_guest_cart_as_it_was() {
        let store = SpinSqlite::default();
        guest_with(&store, &[("a", 2), ("b", 5)]);
        let failed = merge_guest(&store, "guest", "user", 10, 3600, |_| Err::<Vec<CatalogProduct>, _>("catalog down"));
        assert!(matches!(failed, Err(MergeError::Lookup("catalog down"))), "{failed:?}");
        assert_eq!(lines(&store, "guest"), [("a".to_string(), 2), ("b".to_string(), 5)], "given back");
        assert!(lines(&store, "user").is_empty());
        let merged = merge_guest(&store, "guest", "user", 11, 3600, |_| Ok::<_, ()>(vec![product("a", 9), product("b", 9)])).unwrap();
        assert_eq!(merged.map(|m| m.merged), Some(2), "the retry merges them");
        assert_eq!(lines(&store, "user"), [("a".to_string(), 2), ("b".to_string(), 5)]);
    }
}
