//! Domain events on Redis (optional): when `events_to_redis` is `true`, every
//! event read from an outbox is also published as JSON to a channel on
//! `redis_address`
//! (`events_channel`, default `shop.events`) through Spin's outbound Redis,
//! so outside systems can subscribe. Delivery is at least once: a consumer
//! deduplicates by `id` (`<event-type>/<entity-id>`, the same key the emails
//! use). A message carries the `traceparent` (and `tracestate`) of the
//! request that recorded the event, when it had one, so a subscriber's work
//! can join that trace.

use crate::deliveries::OutboxEvent;
use serde_json::{json, Value as Json};
use storage::Db;

/// The message published for an event. A link email's `secret` (its
/// single-use link) is left out: subscribers learn that a link was sent,
/// never the link.
pub fn message(e: &OutboxEvent) -> Json {
    let mut data = e.payload.clone();
    if let Some(map) = data.as_object_mut() {
        map.remove("secret");
    }
    let mut message = json!({
        "type": e.event_type,
        "id": crate::deliveries::idempotency_key(&e.event_type, &e.aggregate_id),
        "occurred_at": e.occurred_at,
        "data": data,
    });
    for (name, value) in e.trace.headers() {
        message[name] = json!(value);
    }
    message
}

/// Where to publish, from Spin variables; `None` unless `events_to_redis`
/// is `true`. (The address always has a value, because it is also the
/// component's only allowed Redis host in `spin.toml`.)
pub fn target_from_variables() -> Option<(String, String)> {
    let get = |n: &str| spin_sdk::variables::get(n).unwrap_or_default().trim().to_string();
    let address = get("redis_address");
    if get("events_to_redis") != "true" || address.is_empty() {
        return None;
    }
    let channel = Some(get("events_channel")).filter(|c| !c.is_empty()).unwrap_or_else(|| "shop.events".into());
    Some((address, channel))
}

/// Publish the outbox events of `source` not yet published. Redis has its
/// own cursor per source (`redis:<source>`), moved only past events that
/// were published, so a failure is retried at the next sweep (at least
/// once) and never holds up the emails.
pub fn publish_new(db: &dyn Db, source: &str, outbox: &dyn Db, address: &str, channel: &str) -> Result<usize, String> {
    let name = format!("redis:{source}");
    let events = crate::deliveries::read_outbox(outbox, crate::deliveries::cursor(db, &name).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if events.is_empty() {
        return Ok(0);
    }
    let conn = spin_sdk::redis::Connection::open(address).map_err(|e| format!("{e:?}"))?;
    let mut published = 0;
    for (id, e) in &events {
        if let Err(err) = conn.publish(channel, &message(e).to_string().into_bytes()) {
            crate::deliveries::advance(db, &name, id - 1).map_err(|e| e.to_string())?;
            return Err(format!("published {published}, then: {err:?}"));
        }
        published += 1;
    }
    let last = events.last().map(|(id, _)| *id).unwrap_or(0);
    crate::deliveries::advance(db, &name, last).map_err(|e| e.to_string())?;
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_never_published() {
        let e = OutboxEvent {
            event_type: "user.password_reset_requested".into(),
            aggregate_id: "r-1".into(),
            occurred_at: "t".into(),
            payload: json!({ "user": { "id": "u-1" }, "secret": { "token": "tk", "link": "https://x/?token=tk" } }),
            trace: Default::default(),
        };
        let m = message(&e);
        assert_eq!(m["data"], json!({ "user": { "id": "u-1" } }));
        assert!(!m.to_string().contains("tk"));
    }

    #[test]
    fn messages_carry_type_id_time_data_and_trace() {
        let e = OutboxEvent {
            event_type: "order.paid".into(),
            aggregate_id: "o-1".into(),
            occurred_at: "2026-01-01T00:00:00Z".into(),
            payload: json!({ "order_id": "o-1" }),
            trace: Default::default(),
        };
        assert_eq!(
            message(&e),
            json!({ "type": "order.paid", "id": "order.paid/o-1", "occurred_at": "2026-01-01T00:00:00Z", "data": { "order_id": "o-1" } })
        );
        let traced = OutboxEvent {
            trace: crate::deliveries::EventTrace {
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
                tracestate: Some("shop=test".into()),
            },
            ..e
        };
        let m = message(&traced);
        assert_eq!(m["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(m["tracestate"], "shop=test");
    }
}
