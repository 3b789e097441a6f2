//! A cart priced live: every response shows current names, prices, line
//! totals and stock, and flags lines that cannot be bought as they are
//! instead of silently dropping them.

use crate::cart::Cart;
use money::{Currency, Money};
use serde::Serialize;

/// What the catalog says about a product now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProduct {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub unit_price: Money,
    pub available: i64,
    pub active: bool,
}

/// Why a line cannot be bought as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    Ok,
    /// The product was deactivated.
    Inactive,
    /// No stock is available.
    OutOfStock,
    /// Less stock than the quantity; `available` says how much.
    InsufficientStock,
    /// The product no longer exists in the catalog.
    Unavailable,
    /// The product's price is now in another currency than the cart's.
    CurrencyChanged,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PricedLine {
    pub product_id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub unit_price: Option<Money>,
    pub quantity: u32,
    pub line_total: Option<Money>,
    pub available: i64,
    pub status: LineStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PricedCart {
    pub lines: Vec<PricedLine>,
    /// Sum of the lines that can be bought (status `ok`).
    pub subtotal: Option<Money>,
    pub currency: Option<String>,
    /// Units across all lines.
    pub item_count: u32,
    /// True when any line is flagged; checkout refuses such a cart.
    pub has_issues: bool,
    pub version: u64,
}

/// Price a cart with current catalog data.
pub fn price(cart: &Cart, catalog: &[CatalogProduct]) -> PricedCart {
    let currency = cart.currency.as_deref().and_then(|c| Currency::parse(c).ok());
    let mut subtotal = currency.map(Money::zero);
    let mut lines: Vec<PricedLine> = cart
        .lines
        .iter()
        .map(|l| {
            let Some(p) = catalog.iter().find(|p| p.id == l.product_id) else {
                return PricedLine {
                    product_id: l.product_id.clone(),
                    sku: None,
                    name: None,
                    unit_price: None,
                    quantity: l.quantity,
                    line_total: None,
                    available: 0,
                    status: LineStatus::Unavailable,
                };
            };
            let line_total = p.unit_price.checked_mul(l.quantity as i64).ok();
            let status = if !p.active {
                LineStatus::Inactive
            } else if Some(p.unit_price.currency) != currency {
                LineStatus::CurrencyChanged
            } else if p.available <= 0 {
                LineStatus::OutOfStock
            } else if p.available < l.quantity as i64 {
                LineStatus::InsufficientStock
            } else {
                LineStatus::Ok
            };
            if status == LineStatus::Ok {
                subtotal = match (subtotal, line_total) {
                    (Some(s), Some(t)) => s.checked_add(t).ok(),
                    _ => None,
                };
            }
            PricedLine {
                product_id: l.product_id.clone(),
                sku: Some(p.sku.clone()),
                name: Some(p.name.clone()),
                unit_price: Some(p.unit_price),
                quantity: l.quantity,
                line_total,
                available: p.available.max(0),
                status,
            }
        })
        .collect();
    lines.sort_by_key(|l| cart.lines.iter().position(|c| c.product_id == l.product_id));
    PricedCart {
        has_issues: lines.iter().any(|l| l.status != LineStatus::Ok),
        lines,
        subtotal,
        currency: cart.currency.clone(),
        item_count: cart.item_count(),
        version: cart.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(n: i64) -> Money {
        Money::new(n, Currency::parse("USD").unwrap())
    }

    fn product(id: &str, price: i64, available: i64, active: bool) -> CatalogProduct {
        CatalogProduct { id: id.into(), sku: id.to_uppercase(), name: format!("Product {id}"), unit_price: usd(price), available, active }
    }

    #[test]
    fn prices_lines_and_flags_problems() {
        let mut cart = Cart::default();
        for (id, q) in [("ok", 2), ("gone", 1), ("off", 1), ("none", 1), ("few", 5)] {
            cart.set(id, q, "USD", 1).unwrap();
        }
        let catalog = vec![product("ok", 1999, 10, true), product("off", 500, 10, false), product("none", 700, 0, true), product("few", 100, 3, true)];
        let priced = price(&cart, &catalog);
        let status: Vec<LineStatus> = priced.lines.iter().map(|l| l.status).collect();
        use LineStatus::*;
        assert_eq!(status, vec![Ok, Unavailable, Inactive, OutOfStock, InsufficientStock]);
        assert_eq!(priced.lines[0].line_total, Some(usd(3998)));
        assert_eq!(priced.subtotal, Some(usd(3998)), "only buyable lines count");
        assert_eq!(priced.item_count, 10);
        assert!(priced.has_issues);
        assert_eq!(priced.lines[4].available, 3);
    }

    #[test]
    fn an_empty_cart() {
        let priced = price(&Cart::default(), &[]);
        assert_eq!((priced.subtotal, priced.item_count, priced.has_issues), (None, 0, false));
    }
}
