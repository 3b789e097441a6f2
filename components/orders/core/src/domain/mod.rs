//! Checkout domain types. No I/O.

pub mod address;
pub mod status;

pub use address::Address;
pub use status::{InvalidTransition, Status};
