//! The cart's use cases, one function per endpoint.

use crate::identity::{self, identify, Identity, TOKEN_HEADER};
use crate::shop::catalog::catalog;
use cart_core::cart::{Cart, CartRule, Owner, MAX_QUANTITY};
use cart_core::expiry;
use cart_core::merge::MergeError;
use cart_core::pricing::{price, CatalogProduct};
use cart_core::store::{update, Create, KvCarts, Step, StoreError};
use http_kit::health::Check;
use http_kit::{ApiError, Ctx, HandlerResult, Reply};
use money::{Currency, Money};
use serde::Deserialize;
use serde_json::json;

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(m) => ApiError::unavailable("cart_store_unavailable", "the cart store is unavailable; retry shortly")
            .with_header("retry-after", "1")
            .with_internal(m),
        StoreError::Contended => ApiError::new(409, "cart_busy", "the cart is being changed by another request; retry")
            .with_header("retry-after", "1"),
        StoreError::Corrupt(m) => ApiError::internal(m),
        // Rare (see cart_core::store). No retry-after: a retry could add
        // twice, the client should look at the cart first.
        StoreError::Unconfirmed => ApiError::new(
            409,
            "cart_busy",
            "this change may or may not have been stored (the cart store failed right after it, or many requests changed the cart at once); reload the cart before retrying",
        ),
        StoreError::Missing => ApiError::internal("the cart to change does not exist"),
    }
}

/// Lets `?` and `update` carry API errors and store errors alike.
enum Failure {
    Api(ApiError),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Api(e) => e,
            Failure::Store(e) => store_error(e),
        }
    }
}

fn store() -> Result<KvCarts, ApiError> {
    KvCarts::open(cart_core::STORE_LABEL).map_err(store_error)
}

/// Current catalog data for these products, through the catalog contract.
fn lookup(ids: &[String]) -> Result<Vec<CatalogProduct>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = catalog::get_products(ids).map_err(|e| {
        ApiError::unavailable("catalog_unavailable", "product data is unavailable; retry shortly")
            .with_header("retry-after", "1")
            .with_internal(e.message)
    })?;
    Ok(found
        .into_iter()
        .filter_map(|p| {
            let currency = Currency::parse(&p.unit_price.currency).ok()?;
            Some(CatalogProduct {
                id: p.id,
                sku: p.sku,
                name: p.name,
                unit_price: Money::new(p.unit_price.amount_minor, currency),
                available: p.available,
                active: p.active,
            })
        })
        .collect())
}

/// The cart priced live, with the guest token (if any) in `X-Cart-Token`.
fn priced_reply(status: u16, cart: &Cart, guest_token: Option<&str>, merged: Option<serde_json::Value>) -> HandlerResult {
    priced_reply_knowing(status, cart, guest_token, merged, None)
}

/// [`priced_reply`], given a product this request has already looked up
/// (a line change checks it first): only the cart's other products are
/// looked up, and the changed line is priced from the same answer its
/// stock check used.
fn priced_reply_knowing(
    status: u16,
    cart: &Cart,
    guest_token: Option<&str>,
    merged: Option<serde_json::Value>,
    known: Option<&CatalogProduct>,
) -> HandlerResult {
    let others: Vec<String> =
        cart.lines.iter().map(|l| l.product_id.clone()).filter(|id| known.is_none_or(|k| &k.id != id)).collect();
    let mut products = lookup(&others)?;
    products.extend(known.filter(|k| cart.lines.iter().any(|l| l.product_id == k.id)).cloned());
    let mut body = json!(price(cart, &products));
    if let Some(m) = merged {
        body["merged_guest_cart"] = m;
    }
    let mut reply = Reply::json(status, &body).with_header("cache-control", "no-store");
    if let Some(t) = guest_token {
        reply = reply.with_header(TOKEN_HEADER, t);
    }
    Ok(reply)
}

/// The cart a request reads or changes, after a guest cart was merged into
/// a signed-in user's cart.
struct Target {
    owner: Owner,
    /// For guests: the token to send back (presented, or newly issued).
    token: Option<String>,
    /// The token was issued by this request, so nobody else can know the
    /// cart's key yet.
    minted: bool,
    merged: Option<serde_json::Value>,
}

impl Target {
    /// Who may create the cart if it does not exist (see cart_core::store):
    /// a user's cart through the increment claim; a guest's only by the
    /// request that minted its token (a guest cart never disappears, so an
    /// older token's cart is never created again).
    fn create(&self) -> Create {
        match (&self.owner, self.minted) {
            (Owner::User(_), _) => Create::Claim,
            (Owner::Guest(_), true) => Create::NewKey,
            (Owner::Guest(_), false) => Create::Never,
        }
    }

    fn new_guest() -> Result<Target, ApiError> {
        let t = identity::new_token()?;
        Ok(Target { owner: Owner::guest(&t), token: Some(t), minted: true, merged: None })
    }
}

/// Resolve the target. `for_write`: a guest without a live cart gets a new token.
fn target(ctx: &Ctx, store: &KvCarts, for_write: bool) -> Result<Option<Target>, ApiError> {
    let Identity { user, guest_token } = identify(ctx)?;
    let now = clock::unix_now();
    let ttl = identity::guest_ttl_secs();
    if let Some(owner) = user {
        let merged = match guest_token {
            Some(t) => merge_guest_cart(store, &owner, &t, now, ttl)?,
            None => None,
        };
        return Ok(Some(Target { owner, token: None, minted: false, merged }));
    }
    let live = match &guest_token {
        Some(t) => store.load(&Owner::guest(t).key()).map_err(store_error)?.is_some(),
        None => false,
    };
    match (guest_token, live) {
        (Some(t), true) => Ok(Some(Target { owner: Owner::guest(&t), token: Some(t), minted: false, merged: None })),
        _ if for_write => Target::new_guest().map(Some),
        _ => Ok(None),
    }
}

/// Merge the guest cart into the user's (`cart_core::merge`, which gives
/// the guest its lines back if the merge fails).
fn merge_guest_cart(store: &KvCarts, user: &Owner, token: &str, now: i64, ttl: i64) -> Result<Option<serde_json::Value>, ApiError> {
    match cart_core::merge::merge_guest(store, &Owner::guest(token).key(), &user.key(), now, ttl, lookup) {
        Ok(merged) => Ok(merged.map(|m| json!({ "merged": m.merged, "skipped": m.skipped }))),
        Err(MergeError::Store(e)) => Err(store_error(e)),
        Err(MergeError::Lookup(e)) => Err(e),
    }
}

/// Files a new guest cart in the expiry index (before its first write, so
/// it never exists unfiled; see `cart_core::expiry`).
fn file_for_expiry(store: &KvCarts, owner: &Owner) -> Result<(), ApiError> {
    let now = clock::unix_now();
    expiry::schedule(store, &owner.key(), now, now.saturating_add(identity::guest_ttl_secs())).map_err(store_error)
}

/// `POST /api/cart/sweep` (scheduler, `X-Sweep-Secret`): removes expired
/// guest carts, at most `limit` index entries per call (`more` says to
/// call again).
pub fn sweep(ctx: &Ctx) -> HandlerResult {
    http_kit::auth::require_shared_secret(ctx, "sweep_secret", "x-sweep-secret")?;
    // A POST, so the pipeline leaves empty parameters to the handler: `limit=` is a 400 as on reads.
    ctx.query.refuse_empty()?;
    let limit = ctx.query.int("limit", 1, expiry::MAX_LIMIT as i64)?.map_or(expiry::DEFAULT_LIMIT, |n| n as usize);
    let store = store()?;
    let now = clock::unix_now();
    let report = expiry::sweep(&store, now, identity::guest_ttl_secs(), limit).map_err(store_error)?;
    // For `GET /metrics`; the sweep's work stands if noting it fails.
    if let Err(e) = expiry::note_run(&store, now) {
        println!("{}", json!({ "level": "warn", "service": "cart", "sweep_run_not_noted": e.to_string() }));
    }
    Ok(Reply::json(200, &json!(report)).with_header("cache-control", "no-store"))
}

/// A guest cart idle too long reads as empty (the next change replaces it
/// in place; it is not deleted, for the same reason as in merging).
fn live_cart(store: &KvCarts, owner: &Owner) -> Result<Cart, ApiError> {
    let cart = store.load(&owner.key()).map_err(store_error)?.unwrap_or_default();
    if owner.is_guest() && cart.expired(clock::unix_now(), identity::guest_ttl_secs()) {
        return Ok(Cart::default());
    }
    Ok(cart)
}

pub fn get_cart(ctx: &Ctx) -> HandlerResult {
    let store = store()?;
    // A guest's read is the hot path of a storefront: one key-value read,
    // not an existence check followed by the same read.
    if let Identity { user: None, guest_token: Some(token) } = identify(ctx)? {
        let owner = Owner::guest(&token);
        return match store.load(&owner.key()).map_err(store_error)? {
            Some(cart) if !cart.expired(clock::unix_now(), identity::guest_ttl_secs()) => {
                priced_reply(200, &cart, Some(&token), None)
            }
            Some(_) => priced_reply(200, &Cart::default(), Some(&token), None),
            None => priced_reply(200, &Cart::default(), None, None),
        };
    }
    match target(ctx, &store, false)? {
        Some(t) => {
            let cart = live_cart(&store, &t.owner)?;
            priced_reply(200, &cart, t.token.as_deref(), t.merged)
        }
        None => priced_reply(200, &Cart::default(), None, None),
    }
}

fn product_id(raw: &str) -> Result<String, ApiError> {
    let ok = raw.len() == 36 && raw.bytes().enumerate().all(|(i, b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    if ok {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(ApiError::validation(
            [("product_id".to_string(), json!("must be a product id (UUID)"))].into_iter().collect(),
        ))
    }
}

fn quantity(q: i64) -> Result<u32, ApiError> {
    if (1..=MAX_QUANTITY as i64).contains(&q) {
        Ok(q as u32)
    } else {
        Err(ApiError::validation(
            [("quantity".to_string(), json!(format!("must be a whole number from 1 to {MAX_QUANTITY}")))].into_iter().collect(),
        ))
    }
}

/// The product, which must exist and be active.
fn orderable(id: &str) -> Result<CatalogProduct, ApiError> {
    let p = lookup(&[id.to_string()])?.into_iter().next().ok_or_else(|| {
        ApiError::new(404, "product_not_found", "no product has this id").with_details(json!({ "product_id": id }))
    })?;
    if !p.active {
        return Err(ApiError::new(422, "product_inactive", "this product is no longer sold").with_details(json!({ "product_id": id })));
    }
    Ok(p)
}

fn rule_error(rule: CartRule) -> ApiError {
    match rule {
        CartRule::QuantityOutOfRange { max } => ApiError::new(422, "quantity_limit", format!("at most {max} of one product per cart"))
            .with_details(json!({ "max": max })),
        CartRule::TooManyLines { max } => ApiError::new(422, "cart_full", format!("a cart holds at most {max} products")),
        CartRule::CurrencyMismatch { cart, product } => ApiError::new(
            422,
            "currency_mismatch",
            format!("this cart is in {cart}; a product priced in {product} cannot join it"),
        )
        .with_details(json!({ "cart_currency": cart, "product_currency": product })),
        CartRule::NotInCart => ApiError::new(404, "not_in_cart", "this product is not in the cart"),
    }
}

/// Set a line to `quantity(current)`, checking the quantity and stock rules.
fn change_line(ctx: &Ctx, id: &str, new_quantity: impl Fn(u32) -> u32) -> HandlerResult {
    let store = store()?;
    let product = orderable(id)?;
    let mut t = target(ctx, &store, true)?.ok_or_else(|| ApiError::internal("no cart target for a write"))?;
    let (now, ttl, guest) = (clock::unix_now(), identity::guest_ttl_secs(), t.owner.is_guest());
    let mut change = |current: Option<Cart>| -> Result<Step<()>, Failure> {
        let mut cart = current.filter(|c| !(guest && c.expired(now, ttl))).unwrap_or_default();
        let wanted = new_quantity(cart.quantity_of(id));
        if wanted > MAX_QUANTITY {
            return Err(rule_error(CartRule::QuantityOutOfRange { max: MAX_QUANTITY }).into());
        }
        if wanted as i64 > product.available {
            return Err(ApiError::new(422, "insufficient_stock", format!("only {} available", product.available.max(0)))
                .with_details(json!({ "product_id": id, "available": product.available.max(0), "requested": wanted }))
                .into());
        }
        cart.set(id, wanted, product.unit_price.currency.code(), now).map_err(rule_error)?;
        Ok(Step::Write(cart, ()))
    };
    if t.minted {
        file_for_expiry(&store, &t.owner)?;
    }
    let written = match update(&store, &t.owner.key(), t.create(), &mut change) {
        // A guest cart that the expiry sweep removed meanwhile: start a new
        // one under a new token.
        Err(Failure::Store(StoreError::Missing)) if guest => {
            let merged = t.merged.take();
            t = Target { merged, ..Target::new_guest()? };
            file_for_expiry(&store, &t.owner)?;
            update(&store, &t.owner.key(), t.create(), &mut change)
        }
        other => other,
    }?;
    let cart = written.1.ok_or_else(|| ApiError::internal("a cart change wrote nothing"))?;
    priced_reply_knowing(200, &cart, t.token.as_deref(), t.merged, Some(&product))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    product_id: String,
    quantity: i64,
}

pub fn add_item(ctx: &Ctx) -> HandlerResult {
    let body: AddBody = ctx.json()?;
    let id = product_id(body.product_id.trim())?;
    let add = quantity(body.quantity)?;
    change_line(ctx, &id, |current| current + add)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    quantity: i64,
}

pub fn set_item(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    let id = product_id(raw_id)?;
    let body: SetBody = ctx.json()?;
    let q = quantity(body.quantity)?;
    change_line(ctx, &id, |_| q)
}

pub fn remove_item(ctx: &Ctx, raw_id: &str) -> HandlerResult {
    let id = product_id(raw_id)?;
    let store = store()?;
    let t = target(ctx, &store, false)?.ok_or_else(|| rule_error(CartRule::NotInCart))?;
    let (now, ttl, guest) = (clock::unix_now(), identity::guest_ttl_secs(), t.owner.is_guest());
    let (_, written) = update(&store, &t.owner.key(), t.create(), |current| -> Result<Step<()>, Failure> {
        // An expired guest cart reads as empty here too: removing one of its
        // lines must not write the others back as a live cart.
        let mut cart = current.filter(|c| !(guest && c.expired(now, ttl))).unwrap_or_default();
        cart.remove(&id, now).map_err(rule_error)?;
        Ok(Step::Write(cart, ()))
    })?;
    let cart = written.ok_or_else(|| ApiError::internal("a cart change wrote nothing"))?;
    priced_reply(200, &cart, t.token.as_deref(), t.merged)
}

pub fn clear_cart(ctx: &Ctx) -> HandlerResult {
    let store = store()?;
    if let Some(t) = target(ctx, &store, false)? {
        let now = clock::unix_now();
        update(&store, &t.owner.key(), t.create(), |current| -> Result<Step<()>, StoreError> {
            match current {
                // Nothing to clear: nothing is created.
                None => Ok(Step::Keep(())),
                Some(mut cart) => {
                    cart.clear(now);
                    Ok(Step::Write(cart, ()))
                }
            }
        })
        .map_err(store_error)?;
    }
    Ok(Reply::no_content())
}

/// Ready when the cart store opens and the catalog contract answers a look-up
/// (a real query against the catalog database, through the composed dependency).
pub fn health(ctx: &Ctx) -> HandlerResult {
    let store_check = Check {
        name: "store",
        result: KvCarts::open(cart_core::STORE_LABEL)
            .and_then(|s| s.load("health-probe"))
            .map(|_| json!({ "status": "ok", "label": cart_core::STORE_LABEL }))
            .map_err(|e| e.to_string()),
    };
    let catalog_check = Check {
        name: "catalog",
        result: catalog::get_products(&["00000000-0000-4000-8000-000000000000".to_string()])
            .map(|found| json!({ "status": "ok", "contract": "shop:catalog/catalog@0.1.0", "probe_matches": found.len() }))
            .map_err(|e| e.message),
    };
    http_kit::health::report(ctx, "cart", vec![store_check, catalog_check])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A product id in a path or body is a canonical UUID or a 422;
        /// a quantity is 1 to 99 or a 422.
        #[test]
        fn product_ids_and_quantities_are_values_or_422s(raw in prop_oneof![".{0,40}", "[0-9a-fA-F-]{36}"], q in any::<i64>()) {
            match product_id(&raw) {
                Ok(id) => {
                    prop_assert_eq!(&id, &raw.to_ascii_lowercase());
                    prop_assert_eq!(product_id(&id).ok(), Some(id.clone()));
                }
                Err(e) => prop_assert_eq!(e.status, 422),
            }
            match quantity(q) {
                Ok(n) => prop_assert!((1..=MAX_QUANTITY).contains(&n) && i64::from(n) == q),
                Err(e) => prop_assert_eq!(e.status, 422),
            }
        }
    }
}
