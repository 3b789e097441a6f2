//! Domain events, recorded in the caller's transaction with the current
//! request's trace context (`storage::outbox`), so the email or SMS an
//! event causes is sent in that request's trace, and the request's
//! [`crate::nudge`] can name its own events.

use storage::{Db, DbError};

/// Append a domain event to the outbox (idempotent per type and key), in
/// the caller's transaction.
pub fn record(db: &dyn Db, event_type: &str, key: &str, payload: &serde_json::Value) -> Result<(), DbError> {
    let trace = crate::trace::current();
    let traceparent = trace.as_ref().map(|t| t.outbound_traceparent());
    let tracestate = trace.as_ref().and_then(|t| t.tracestate.as_deref());
    storage::outbox::record(db, event_type, key, &payload.to_string(), &clock::now_rfc3339(), traceparent.as_deref(), tracestate)
}
