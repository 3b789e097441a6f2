//! Products and categories as the catalog serves them.

use super::ProductId;
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
    pub image_urls: Vec<String>,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
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
