//! The users service, minus its HTTP entry point: domain types, the SQL,
//! Argon2id password hashing, token issuing and login limits. The HTTP
//! component (`components/users/http`) is a thin adapter over it, and the
//! readiness check uses its schema.

pub mod account_tokens;
pub mod addresses;
pub mod domain;
pub mod login_limits;
pub mod passwords;
pub mod repository;
pub mod retention;
pub mod schema;
pub mod settings;
pub mod tokens;
