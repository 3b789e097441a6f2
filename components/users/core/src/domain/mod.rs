//! Users domain types: parsed once at the edge, valid from then on. No I/O.

pub mod email;
pub mod names;
pub mod password;
pub mod phone;

pub use email::Email;
pub use names::PersonName;
pub use password::NewPassword;
pub use phone::PhoneNumber;

#[cfg(test)]
mod properties;
