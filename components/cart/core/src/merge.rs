//! Merging a guest's cart into the account's cart when the guest signs in.

use crate::cart::{Cart, MAX_QUANTITY};
use crate::pricing::CatalogProduct;
use crate::store::{landed, new_write_id, update, update_as, Create, Kv, Step, StoreError, Timing};

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
/// so two concurrent sign-ins merge it once. Should anything fail after the
/// claim (the lookup, the account cart's write), the claimed lines are put
/// back into the guest cart before the error is returned, so the next
/// request merges them instead of finding the guest cart empty — except
/// when the account cart's write is unconfirmed (it may have landed), which
/// keeps them from being added twice. A claim whose own write is
/// unconfirmed is looked up by its write id: landed, the merge goes on
/// with the lines it took (found in review: they were dropped); not landed,
/// they are still in the guest cart and the error stands.
///
/// Once the lines are in the account's cart, the guest cart is sealed: it
/// becomes a *removed* marker (as the expiry sweep leaves), which no change
/// writes over, so a guest add racing the sign-in in another tab either
/// lands before the seal (and is merged too: the merge goes round again) or
/// finds the marker and starts a new guest cart under a new token, which
/// the next signed-in request carrying it merges (found in review: such an
/// add landed in the emptied cart, whose token the storefront had already
/// forgotten).
pub fn merge_guest<S: Kv, E>(
    store: &S,
    guest_key: &str,
    user_key: &str,
    now: i64,
    ttl: i64,
    lookup: impl FnMut(&[String]) -> Result<Vec<CatalogProduct>, E>,
) -> Result<Option<Merged>, MergeError<E>> {
    let mut lookup = lookup;
    let mut total: Option<Merged> = None;
    // A guest add between a round's claim and its seal adds a round; a
    // guest adding without pause is left to the next request.
    for _ in 0..MERGE_ROUNDS {
        let Some(merged) = merge_round(store, guest_key, user_key, now, ttl, &mut lookup)? else { break };
        let total = total.get_or_insert(Merged { merged: 0, skipped: Vec::new() });
        total.merged += merged.merged;
        total.skipped.extend(merged.skipped);
        if seal(store, guest_key) {
            break;
        }
    }
    Ok(total)
}

/// Claim and move rounds at most per merge.
const MERGE_ROUNDS: usize = 3;

/// One claim of the guest cart's lines, moved into the account's cart.
fn merge_round<S: Kv, E>(
    store: &S,
    guest_key: &str,
    user_key: &str,
    now: i64,
    ttl: i64,
    lookup: impl FnOnce(&[String]) -> Result<Vec<CatalogProduct>, E>,
) -> Result<Option<Merged>, MergeError<E>> {
    let id = new_write_id()?;
    let mut seen: Option<Cart> = None;
    let claim = update_as(store, guest_key, Create::Never, &Timing::default(), &id, |current| -> Result<Step<Option<Cart>>, StoreError> {
        seen = None;
        match current {
            Some(c) if !c.lines.is_empty() && !c.expired(now, ttl) => {
                let mut emptied = c.clone();
                emptied.clear(now);
                seen = Some(c.clone());
                Ok(Step::Write(emptied, Some(c)))
            }
            _ => Ok(Step::Keep(None)),
        }
    });
    let claimed = match claim {
        Ok((claimed, _)) => claimed,
        Err(StoreError::Unconfirmed) => match seen.as_ref().map(|c| landed(store, guest_key, &id, c.version + 1)) {
            Some(Some(true)) => seen,
            // Not landed: the lines are still in the guest cart.
            Some(Some(false)) => return Err(StoreError::Unavailable("the guest cart could not be claimed; nothing was merged".into()).into()),
            _ => {
                println!("{}", serde_json::json!({ "level": "error", "service": "cart", "guest_cart_claim_unconfirmed": seen.map(|c| c.lines.len()) }));
                return Err(StoreError::Unconfirmed.into());
            }
        },
        Err(e) => return Err(e.into()),
    };
    let Some(guest) = claimed else { return Ok(None) };
    let moved = move_lines(store, &guest, user_key, now, lookup);
    match &moved {
        // The account's cart may hold them already: given back as well, the
        // next merge would add them twice.
        Err(MergeError::Store(StoreError::Unconfirmed)) => {
            println!("{}", serde_json::json!({ "level": "warn", "service": "cart", "guest_cart_merge_unconfirmed": guest.lines.len() }));
        }
        Err(_) => give_back(store, guest_key, user_key, &guest, now),
        Ok(_) => {}
    }
    moved.map(Some)
}

/// Turn the emptied guest cart into a removed marker. False when a guest
/// add filled it again since the claim (another round merges that); true
/// otherwise, also when the seal could not be written (the cart is empty:
/// a later add lands there, and the next signed-in request merges it).
fn seal<S: Kv>(store: &S, guest_key: &str) -> bool {
    let sealed = update(store, guest_key, Create::Never, |current| -> Result<Step<bool>, StoreError> {
        Ok(match current {
            Some(c) if c.lines.is_empty() => Step::Write(Cart { removed: true, ..Cart::default() }, true),
            Some(_) => Step::Keep(false),
            None => Step::Keep(true),
        })
    });
    sealed.map_or(true, |(done, _)| done)
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
///
/// A guest cart another merge closed meanwhile (a guest add landed in it
/// after this claim, and another signed-in request merged and closed it)
/// takes no change: the lines go to the account's cart, where they were
/// headed, capped by the quantity limit only (found in review: they were
/// lost).
fn give_back<S: Kv>(store: &S, guest_key: &str, user_key: &str, guest: &Cart, now: i64) {
    let merge_in = |current: Option<Cart>| -> Result<Step<Vec<String>>, StoreError> {
        let mut cart = current.unwrap_or_default();
        let skipped = cart.merge(guest, |_| MAX_QUANTITY, now);
        Ok(Step::Write(cart, skipped))
    };
    let restored = match update(store, guest_key, Create::Never, merge_in) {
        Err(StoreError::Missing) => update(store, user_key, Create::Claim, merge_in),
        other => other,
    };
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
    use crate::store::sim::{Hooked, Hooks, SpinRedis, SpinSqlite};
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

    /// After a merge the guest cart is a removed marker: a guest change
    /// racing the sign-in gets `Missing` (the handler starts a new guest
    /// cart under a new token), never an emptied cart nobody merges again.
    #[test]
    fn a_merged_guest_cart_is_sealed() {
        let store = SpinSqlite::default();
        guest_with(&store, &[("a", 2)]);
        merge_guest(&store, "guest", "user", 10, 3600, |_| Ok::<_, ()>(vec![product("a", 9)])).unwrap();
        let add = update(&store, "guest", Create::Never, |c| -> Result<Step<()>, StoreError> {
            let mut c = c.unwrap_or_default();
            c.set("b", 1, "USD", 11).unwrap();
            Ok(Step::Write(c, ()))
        });
        assert_eq!(add.err(), Some(StoreError::Missing));
        assert!(crate::store::decode(&store.get("guest").unwrap().unwrap()).unwrap().removed);
    }

    /// A guest add landing between the claim and the seal (another tab)
    /// is merged by another round.
    #[test]
    fn a_guest_add_during_the_merge_is_merged_too() {
        let store = SpinSqlite::default();
        guest_with(&store, &[("a", 2)]);
        let mut rounds = 0;
        let merged = merge_guest(&store, "guest", "user", 10, 3600, |_| {
            rounds += 1;
            if rounds == 1 {
                update(&store, "guest", Create::Never, |c| -> Result<Step<()>, StoreError> {
                    let mut c = c.unwrap_or_default();
                    c.set("b", 1, "USD", 10).unwrap();
                    Ok(Step::Write(c, ()))
                })
                .unwrap();
            }
            Ok::<_, ()>(vec![product("a", 9), product("b", 9)])
        })
        .unwrap();
        assert_eq!((rounds, merged.map(|m| m.merged)), (2, Some(2)));
        assert_eq!(lines(&store, "user"), [("a".to_string(), 2), ("b".to_string(), 1)]);
        assert!(crate::store::decode(&store.get("guest").unwrap().unwrap()).unwrap().removed);
    }

    /// Spin's Redis store whose first swap reports an error (after writing,
    /// when `lands`), and whose next read fails too: the claim is
    /// unconfirmed.
    struct ClaimUnconfirmed {
        lands: bool,
        swapped: std::cell::Cell<bool>,
        fail_read: std::cell::Cell<bool>,
    }

    impl Hooks<SpinRedis> for ClaimUnconfirmed {
        fn current(&self, inner: &SpinRedis, cas: &mut <SpinRedis as Kv>::Cas) -> Result<Option<Vec<u8>>, StoreError> {
            if self.fail_read.replace(false) {
                return Err(StoreError::Unavailable("connection reset".into()));
            }
            inner.current(cas)
        }
        fn swap(&self, inner: &SpinRedis, cas: <SpinRedis as Kv>::Cas, value: &[u8]) -> Result<Result<(), <SpinRedis as Kv>::Cas>, StoreError> {
            if self.swapped.replace(true) {
                return inner.swap(cas, value);
            }
            if self.lands {
                let _ = inner.swap(cas, value)?;
            }
            self.fail_read.set(true);
            Err(StoreError::Unavailable("connection reset".into()))
        }
    }

    /// Found in review: a claim whose write was unconfirmed dropped the
    /// lines it took. Landed, the merge goes on with them; not landed,
    /// they are still in the guest cart.
    #[test]
    fn an_unconfirmed_claim_is_looked_up() {
        for lands in [true, false] {
            let store = Hooked { inner: SpinRedis::default(), hooks: ClaimUnconfirmed { lands, swapped: Default::default(), fail_read: Default::default() } };
            update(&store.inner, "guest", Create::NewKey, |_| -> Result<Step<()>, StoreError> {
                let mut c = Cart::default();
                c.set("a", 2, "USD", 1).unwrap();
                Ok(Step::Write(c, ()))
            })
            .unwrap();
            let result = merge_guest(&store, "guest", "user", 10, 3600, |_| Ok::<_, ()>(vec![product("a", 9)]));
            let guest = crate::store::decode(&store.inner.get("guest").unwrap().unwrap()).unwrap();
            let user: Vec<u32> = store.inner.get("user").unwrap().map(|b| crate::store::decode(&b).unwrap().lines.iter().map(|l| l.quantity).collect()).unwrap_or_default();
            if lands {
                assert_eq!(result.unwrap().map(|m| m.merged), Some(1));
                assert_eq!(user, [2], "moved");
                assert!(guest.removed, "and sealed");
            } else {
                assert!(matches!(result, Err(MergeError::Store(StoreError::Unavailable(_)))), "{result:?}");
                assert_eq!(guest.lines.len(), 1, "still the guest's");
                assert!(user.is_empty());
            }
        }
    }

    /// Found in review: a merge whose lookup failed gave its lines back to
    /// the guest cart, but another merge had closed it meanwhile (a guest
    /// add landed after the first claim, and a second signed-in request
    /// merged that): the lines were lost. They go to the account's cart.
    #[test]
    fn lines_given_back_to_a_closed_guest_cart_go_to_the_account_s_cart() {
        let store = SpinSqlite::default();
        guest_with(&store, &[("a", 2)]);
        let failed = merge_guest(&store, "guest", "user", 10, 3600, |_| {
            // Meanwhile: another tab adds, another request merges and closes.
            update(&store, "guest", Create::Never, |c| -> Result<Step<()>, StoreError> {
                let mut c = c.unwrap_or_default();
                c.set("b", 1, "USD", 10).unwrap();
                Ok(Step::Write(c, ()))
            })
            .unwrap();
            merge_guest(&store, "guest", "user", 10, 3600, |_| Ok::<_, ()>(vec![product("b", 9)])).unwrap();
            Err::<Vec<CatalogProduct>, _>("catalog down")
        });
        assert!(matches!(failed, Err(MergeError::Lookup("catalog down"))), "{failed:?}");
        assert_eq!(lines(&store, "user"), [("b".to_string(), 1), ("a".to_string(), 2)], "nothing lost");
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
