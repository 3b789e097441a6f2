//! Checkout: orders, their state machine, payments and Stripe. Shared by the
//! orders component (placing, reading, cancelling, fulfilling orders) and
//! the payments component (Stripe sessions, intents, refunds, webhooks),
//! which use one database so a payment and the order change it causes
//! commit together.

pub mod access;
pub mod admin_listing;
pub mod domain;
pub mod inventory_client;
pub mod metrics;
pub mod orders;
pub mod payments;
pub mod privacy;
pub mod schema;
pub mod stripe;
