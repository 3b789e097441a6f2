//! Payments as their own objects, linked to the order they pay for.
//!
//! - [`ledger`]: every Stripe object of an order (Checkout Sessions,
//!   PaymentIntents, charges, refunds) with its own status, and which
//!   Stripe events move which object;
//! - [`lifecycle`]: how those events, and the shop's own decisions, move the
//!   order (a failed attempt never ends it; late money is honoured or
//!   returned; a second payment is returned);
//! - [`summary`]: each order's payment at a glance (`payments`);
//! - [`refunds`]: refunds an admin asks for, and automatic ones;
//! - [`closing`]: closing an ended order's objects at Stripe;
//! - [`access`]: reading an order with its lazy expiry, and errors for clients;
//! - [`stripe`]: the Stripe API (requests, webhook signatures, settings);
//! - [`stripe_keys`]: the Idempotency-Keys sent to Stripe, and their next
//!   generation after Stripe answered a 5xx;
//! - [`privacy`]: a customer's payment data for the export.
//!
//! Used by the payments component and the orders component; both share the
//! orders database, so a payment and the order change it causes commit in
//! one transaction.

pub mod access;
pub mod closing;
pub mod ledger;
pub mod lifecycle;
pub mod privacy;
pub mod refunds;
pub mod stripe;
pub mod stripe_keys;
pub mod stripe_units;
pub mod summary;
