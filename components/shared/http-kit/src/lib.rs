//! The API-gateway concerns every shop component shares, implemented once.
//!
//! A component's `#[http_component]` entry point hands the raw Spin request to
//! [`serve`], together with its service name and a router function. `serve`
//! runs the same pipeline for every service:
//!
//! 1. assign a request id (keeping a sane incoming `x-request-id`);
//! 2. answer CORS preflights, using the origins in the `cors_allowed_origins`
//!    Spin variable;
//! 3. call the router with a parsed [`Ctx`] (path segments, query, headers,
//!    body) — the one place where authentication will also hook in;
//! 4. turn an [`ApiError`] into the one JSON error envelope;
//! 5. add the request id and CORS headers, and write one structured log line.
//!
//! Everything that is not Spin I/O is a plain function with unit tests beside it.

pub mod auth;
pub mod body;
pub mod conditional;
pub mod cors;
pub mod error;
pub mod health;
pub mod html;
pub mod ids;
pub mod log;
pub mod nudge;
pub mod outbound;
pub mod outbox;
pub mod query;
pub mod request;
pub mod request_id;
pub mod response;
pub mod settings;
pub mod signed_links;
pub mod trace;
mod storage_errors;
mod service;
#[cfg(test)]
mod properties;

pub use error::{ApiError, ErrorCode};
pub use query::{Pagination, Query};
pub use request::{idempotency_key, Ctx};
pub use response::Reply;
pub use storage_errors::db_error;
pub use service::{serve, Service};

/// What every handler returns: a reply, or an error that becomes the envelope.
pub type HandlerResult = Result<Reply, ApiError>;
