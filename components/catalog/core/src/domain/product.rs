//! Products and categories as the catalog serves them.

use super::ProductId;
use crate::images::ProductImage;
use money::Money;
use serde::Serialize;

/// A product as the public API shows it.
///
/// `available` is what a customer can buy now: stock on hand minus live
/// reservations (reservations arrive with the inventory issue; until then it
/// equals stock on hand).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub available: i64,
    pub in_stock: bool,
    pub category: Option<CategoryRef>,
    /// Externally hosted image URLs, set directly by admins.
    pub image_urls: Vec<String>,
    /// Images uploaded to the shop's object storage, in display order.
    pub images: Vec<ProductImage>,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Stock on hand; shown to admins only (see [`AdminProduct`]).
    #[serde(skip)]
    pub on_hand: i64,
    /// Units held by live reservations; admins only.
    #[serde(skip)]
    pub reserved: i64,
}

/// A product as admins see it: the public fields plus the stock breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminProduct {
    #[serde(flatten)]
    pub product: Product,
    pub on_hand: i64,
    pub reserved: i64,
}

impl Product {
    /// The admin view of this product.
    pub fn for_admin(self) -> AdminProduct {
        AdminProduct { on_hand: self.on_hand, reserved: self.reserved, product: self }
    }
}

/// The category a product belongs to, as embedded in the product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryRef {
    pub id: String,
    pub slug: String,
    pub name: String,
}

/// A category with the number of products a customer can see in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Category {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub product_count: i64,
}
