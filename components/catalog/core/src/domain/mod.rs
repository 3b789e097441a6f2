//! Catalog domain types. No I/O here.

pub mod ids;
pub mod listing;
pub mod product;

pub use ids::ProductId;
pub use listing::{PriceRange, ProductFilter, SearchText, Sort};
pub use product::{AdminProduct, Category, CategoryRef, Product};
