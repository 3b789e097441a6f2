//! The notifications service, minus its HTTP entry point: email templates
//! and rendering, the delivery pipeline (outbox → deliveries → Resend or
//! the local mail log) and the Resend client. The HTTP component
//! (`components/notifications/http`) is a thin adapter; the readiness check
//! uses the schema.

pub mod deliveries;
pub mod events;
pub mod privacy;
pub mod resend;
pub mod schema;
pub mod settings;
pub mod templates;
