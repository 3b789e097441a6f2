//! SMS texts for the order events customers want on their phone: shipped,
//! cancelled, refunded (and a payment returned automatically). Plain text,
//! short (one or two SMS segments), no links. Sent only to a phone number
//! whose owner consented to SMS (the users service records when).

use crate::templates::money_text;
use serde_json::Value as Json;

/// Longest SMS body we send, in characters: Twilio accepts 1600 and splits
/// it into segments; ours stay within two.
pub const MAX_CHARS: usize = 306;

/// A rendered SMS: a short label for the admin listing and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub label: String,
    pub body: String,
}

/// The SMS for an event, or `None` for events that send none.
pub fn render(event_type: &str, payload: &Json, store_name: &str) -> Option<Sms> {
    let order = &payload["order"];
    let id = payload["order_id"].as_str().unwrap_or("");
    // The first block of the UUID is enough to recognise an order in a text.
    let short = id.split('-').next().unwrap_or(id);
    let (label, body) = match event_type {
        "order.shipped" => {
            let tracking = match (order["tracking"]["carrier"].as_str(), order["tracking"]["number"].as_str()) {
                (Some(c), Some(n)) => format!(" Tracking: {c} {n}."),
                _ => String::new(),
            };
            ("Order shipped", format!("{store_name}: your order {short} has shipped.{tracking}"))
        }
        "order.cancelled" => ("Order cancelled", format!("{store_name}: your order {short} was cancelled. Any payment is refunded.")),
        "order.refunded" => (
            "Order refunded",
            format!("{store_name}: {} was refunded for your order {short}.", money_text(&order["refunded"])),
        ),
        "order.payment_returned" => (
            "Payment returned",
            format!("{store_name}: your payment of {} for order {short} was refunded.", money_text(&payload["amount"])),
        ),
        _ => return None,
    };
    Some(Sms { label: format!("SMS: {label}"), body: body.chars().take(MAX_CHARS).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order() -> Json {
        json!({
            "order_id": "5f1c0e7a-9b2d-4c3e-8f6a-1b2c3d4e5f60",
            "order": {
                "status": "shipped",
                "tracking": { "carrier": "DHL", "number": "JD0001" },
                "total": { "amount_minor": 2500, "currency": "USD" },
                "refunded": { "amount_minor": 1000, "currency": "USD" },
            },
            "amount": { "amount_minor": 4800, "currency": "JPY" },
        })
    }

    #[test]
    fn order_events_have_short_texts() {
        let s = render("order.shipped", &order(), "Shop").unwrap();
        assert_eq!(s.body, "Shop: your order 5f1c0e7a has shipped. Tracking: DHL JD0001.");
        assert_eq!(s.label, "SMS: Order shipped");
        assert_eq!(render("order.refunded", &order(), "Shop").unwrap().body, "Shop: 10.00 USD was refunded for your order 5f1c0e7a.");
        assert!(render("order.payment_returned", &order(), "Shop").unwrap().body.contains("4800 JPY"));
        assert!(render("order.cancelled", &order(), "Shop").unwrap().body.contains("cancelled"));
    }

    #[test]
    fn other_events_send_no_sms() {
        for kind in ["order.paid", "order.placed", "order.expired", "user.registered", "user.password_reset_requested"] {
            assert_eq!(render(kind, &order(), "Shop"), None, "{kind}");
        }
    }

    #[test]
    fn texts_are_bounded() {
        let long_name = "S".repeat(500);
        assert_eq!(render("order.cancelled", &order(), &long_name).unwrap().body.chars().count(), MAX_CHARS);
    }
}
