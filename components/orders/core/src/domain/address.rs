//! Shipping addresses: the shared postal address (the address book uses the
//! same type and the same validation).

pub use postal::{Address, AddressInput};
