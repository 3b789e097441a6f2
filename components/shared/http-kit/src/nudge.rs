//! Tell the notifications service that new domain events were committed, so
//! their emails go out right away instead of at the next scheduled sweep.
//!
//! It is an in-process call to the notifications component through Spin's
//! local service chaining (`http://notifications.spin.internal`, allowed in
//! the caller's `allowed_outbound_hosts`). Best effort by design: whatever
//! happens — notifications down, Resend down, a host without service
//! chaining such as Fermyon Cloud — the caller's request is unaffected, and
//! the sweep delivers later. Call it only after the change has committed.
//!
//! The nudge delivers this request's own emails and SMS, and nothing else:
//! it names them by the trace context their outbox rows were recorded with
//! ([`EVENTS_OF`], see [`crate::outbox`]), so a request never waits for
//! other requests' emails or a promotion batch, and a request's emails are
//! sent by its own nudge, not by whichever nudge came first.

/// The private delivery route of the notifications component.
pub const DELIVER_NOW_URL: &str = "http://notifications.spin.internal/internal/notifications/deliver";

/// The header naming the events to deliver: the `traceparent` they were
/// recorded with. Our own header, because Spin, when it exports traces,
/// replaces `traceparent` on outbound calls with its own span.
pub const EVENTS_OF: &str = "x-shop-events-of";

/// Ask for immediate delivery; every failure is ignored.
pub fn notifications() {
    let mut req = spin_sdk::http::Request::builder();
    req.method(spin_sdk::http::Method::Post).uri(DELIVER_NOW_URL);
    // The delivery runs in the same trace as the change that caused it.
    if let Some(trace) = crate::trace::current() {
        req.header(EVENTS_OF, trace.outbound_traceparent());
        for (name, value) in trace.outbound_headers() {
            req.header(name, value);
        }
    }
    let outcome: Result<spin_sdk::http::Response, _> = spin_sdk::http::run(spin_sdk::http::send(req.build()));
    if let Err(e) = outcome {
        println!("{}", serde_json::json!({ "level": "info", "nudge": "notifications", "skipped": e.to_string() }));
    }
}
