//! Checkout: orders, their state machine, history and outbox, and the
//! inventory contract as checkout uses it. Shared by the orders component
//! (placing, reading, cancelling, fulfilling orders) and, through
//! `payments-core`, by the payments component: both use one database, so a
//! payment and the order change it causes commit together. The payment
//! objects themselves (Checkout Sessions, PaymentIntents, charges, refunds)
//! and Stripe live in `payments-core`, which builds on this crate.

pub mod access;
pub mod admin_listing;
pub mod disputes;
pub mod domain;
pub mod inventory_client;
pub mod invoices;
pub mod metrics;
pub mod orders;
pub mod owed_stock;
pub mod privacy;
pub mod restock;
pub mod schema;
pub mod settings;
