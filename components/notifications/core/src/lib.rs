//! The notifications service, minus its HTTP entry point: email templates
//! and rendering, the delivery pipeline (outbox → deliveries → Resend or
//! the local mail log; SMS to Twilio or the same log) and the Resend and
//! Twilio clients. The HTTP component
//! (`components/notifications/http`) is a thin adapter; the readiness check
//! uses the schema.

pub mod deliveries;
pub mod events;
pub mod privacy;
pub mod promotions;
pub mod resend;
pub mod schema;
pub mod settings;
pub mod sms;
pub mod templates;
pub mod twilio;
