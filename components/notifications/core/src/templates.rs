//! Email templates (in `components/notifications/templates/`, embedded at
//! build time) and their rendering. Every value put into the HTML part is
//! HTML-escaped; the text part gets the raw value. Amounts are formatted
//! with their currency's own number of decimals (19.99 USD, 4800 JPY).

use money::{Currency, Money};
use serde_json::Value as Json;

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

const LAYOUT: &str = include_str!("../templates/layout.html");

fn template(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "welcome" => (include_str!("../templates/welcome.html"), include_str!("../templates/welcome.txt")),
        "order_confirmation" => (include_str!("../templates/order_confirmation.html"), include_str!("../templates/order_confirmation.txt")),
        "order_shipped" => (include_str!("../templates/order_shipped.html"), include_str!("../templates/order_shipped.txt")),
        "order_cancelled" => (include_str!("../templates/order_cancelled.html"), include_str!("../templates/order_cancelled.txt")),
        "order_refunded" => (include_str!("../templates/order_refunded.html"), include_str!("../templates/order_refunded.txt")),
        "payment_returned" => (include_str!("../templates/payment_returned.html"), include_str!("../templates/payment_returned.txt")),
        "password_changed" => (include_str!("../templates/password_changed.html"), include_str!("../templates/password_changed.txt")),
        "verify_email" => (include_str!("../templates/verify_email.html"), include_str!("../templates/verify_email.txt")),
        "password_reset" => (include_str!("../templates/password_reset.html"), include_str!("../templates/password_reset.txt")),
        _ => return None,
    })
}

/// Escape text for HTML element content and attribute values (the one
/// implementation, in `http-kit`).
pub use http_kit::html::escape as html_escape;

/// A value: `Text` is escaped in HTML; `Html` was built from escaped parts.
enum Var {
    Text(String),
    Html { html: String, text: String },
}

fn fill(template: &str, vars: &[(&str, &Var)], html: bool) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        let rendered = match (value, html) {
            (Var::Text(t), true) => html_escape(t),
            (Var::Text(t), false) => t.clone(),
            (Var::Html { html, .. }, true) => html.clone(),
            (Var::Html { text, .. }, false) => text.clone(),
        };
        out = out.replace(&format!("{{{{{name}}}}}"), &rendered);
    }
    out
}

/// `{"amount_minor": 1999, "currency": "USD"}` → `19.99 USD`.
pub fn money_text(v: &Json) -> String {
    match (v["amount_minor"].as_i64(), v["currency"].as_str().and_then(|c| Currency::parse(c).ok())) {
        (Some(a), Some(c)) => Money::new(a, c).to_string(),
        _ => "—".to_string(),
    }
}

fn text(v: &Json) -> Var {
    Var::Text(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
}

/// The invoice issued with the payment, and the storefront page that shows
/// it (empty for events from before invoices).
fn invoice_link(invoice: &Json) -> Var {
    match (invoice["number"].as_str(), invoice["url"].as_str()) {
        (Some(number), Some(url)) => Var::Html {
            html: format!("<p>Your invoice <strong>{}</strong>: <a href=\"{}\">view and print it</a>.</p>", html_escape(number), html_escape(url)),
            text: format!("\nYour invoice {number}: {url}\n"),
        },
        (Some(number), None) => Var::Html { html: format!("<p>Your invoice: <strong>{}</strong>.</p>", html_escape(number)), text: format!("\nYour invoice: {number}\n") },
        _ => Var::Html { html: String::new(), text: String::new() },
    }
}

fn order_lines(order: &Json) -> Var {
    let mut html = String::new();
    let mut plain = String::new();
    for l in order["lines"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let name = l["name"].as_str().unwrap_or("");
        let qty = l["quantity"].as_i64().unwrap_or(0);
        let (unit, total) = (money_text(&l["unit_price"]), money_text(&l["line_total"]));
        html.push_str(&format!(
            "<tr><td>{}</td><td align=\"right\">{qty}</td><td align=\"right\">{}</td><td align=\"right\">{}</td></tr>\n",
            html_escape(name),
            html_escape(&unit),
            html_escape(&total)
        ));
        plain.push_str(&format!("- {name} × {qty} @ {unit} = {total}\n"));
    }
    Var::Html { html, text: plain }
}

/// Events whose email may carry a single-use link (under the payload's
/// `secret`; the welcome email carries the first verification link): the link is never published, never shown to admins, and the
/// stored copy of the email is emptied once it has been handed over.
pub fn carries_secret(event_type: &str) -> bool {
    SECRET_CARRYING.contains(&event_type)
}

/// The event types whose email carries a single-use link ([`carries_secret`]).
pub const SECRET_CARRYING: [&str; 3] = ["user.registered", "user.verification_requested", "user.password_reset_requested"];

/// Render the email for an outbox event; `None` for events that send none
/// (and for a link email whose link was already used or replaced).
pub fn render(event_type: &str, payload: &Json, store_name: &str) -> Option<Rendered> {
    let store = Var::Text(store_name.to_string());
    let order = &payload["order"];
    let order_id = text(&payload["order_id"]);
    let (name, subject, vars): (&str, String, Vec<(&str, Var)>) = match event_type {
        "user.registered" => {
            // The first verification link, unless it was already used (or
            // the account predates verification).
            let confirm = match (payload["secret"]["link"].as_str(), payload["expires_at"].as_str()) {
                (Some(link), Some(until)) => Var::Html {
                    html: format!(
                        "<p>Please confirm your email address: <a href=\"{}\">Confirm my email address</a> (the link works once, until {}).</p>",
                        html_escape(link),
                        html_escape(until)
                    ),
                    text: format!("\nPlease confirm your email address by opening this link (it works once, until {until}):\n\n{link}\n"),
                },
                _ => Var::Html { html: String::new(), text: String::new() },
            };
            (
                "welcome",
                format!("Welcome to {store_name}"),
                vec![("first_name", text(&payload["user"]["first_name"])), ("email", text(&payload["user"]["email"])), ("confirm", confirm)],
            )
        }
        "user.password_changed" => (
            "password_changed",
            format!("Your {store_name} password was changed"),
            vec![("first_name", text(&payload["user"]["first_name"])), ("changed_at", text(&payload["changed_at"]))],
        ),
        "user.verification_requested" | "user.password_reset_requested" => {
            let link = payload["secret"]["link"].as_str()?;
            let verify = event_type == "user.verification_requested";
            (
                if verify { "verify_email" } else { "password_reset" },
                if verify { format!("Confirm your email address for {store_name}") } else { format!("Reset your {store_name} password") },
                vec![
                    ("first_name", text(&payload["user"]["first_name"])),
                    ("email", text(&payload["user"]["email"])),
                    ("link", Var::Text(link.to_string())),
                    ("expires_at", text(&payload["expires_at"])),
                ],
            )
        }
        "order.paid" => (
            "order_confirmation",
            format!("Order confirmed: {}", payload["order_id"].as_str().unwrap_or("")),
            vec![("order_id", order_id), ("lines", order_lines(order)), ("total", Var::Text(money_text(&order["total"]))), ("invoice", invoice_link(&payload["invoice"]))],
        ),
        "order.shipped" => (
            "order_shipped",
            format!("Your order {} has shipped", payload["order_id"].as_str().unwrap_or("")),
            vec![("order_id", order_id), ("carrier", text(&order["tracking"]["carrier"])), ("tracking_number", text(&order["tracking"]["number"]))],
        ),
        "order.cancelled" | "order.expired" => {
            let expired = event_type == "order.expired";
            let explanation = if expired {
                "It was not paid in time, so the items were released."
            } else if order["status"] == "cancelled" && order["refunded"]["amount_minor"].as_i64().unwrap_or(0) > 0 {
                "Your payment has been refunded."
            } else {
                "If you had paid, the payment is refunded."
            };
            (
                "order_cancelled",
                format!("Order {} {}", payload["order_id"].as_str().unwrap_or(""), if expired { "expired" } else { "cancelled" }),
                vec![
                    ("order_id", order_id),
                    ("outcome", Var::Text(if expired { "expired" } else { "cancelled" }.into())),
                    ("explanation", Var::Text(explanation.into())),
                ],
            )
        }
        "order.refunded" => {
            let partial = order["refunded"]["amount_minor"].as_i64() < order["total"]["amount_minor"].as_i64();
            (
                "order_refunded",
                format!("Refund for order {}", payload["order_id"].as_str().unwrap_or("")),
                vec![
                    ("order_id", order_id),
                    ("refunded", Var::Text(money_text(&order["refunded"]))),
                    ("partial_note", Var::Text(if partial { format!(" (of {})", money_text(&order["total"])) } else { String::new() })),
                ],
            )
        }
        "order.payment_returned" => {
            let why = match payload["reason"].as_str() {
                Some("paid_twice") => "had already been paid",
                Some("paid_after_cancelled") => "had been cancelled before the payment arrived",
                _ => "had expired before the payment arrived",
            };
            (
                "payment_returned",
                format!("Your payment for order {} was refunded", payload["order_id"].as_str().unwrap_or("")),
                vec![("order_id", order_id), ("amount", Var::Text(money_text(&payload["amount"]))), ("why", Var::Text(why.into()))],
            )
        }
        _ => return None,
    };
    let (html_t, text_t) = template(name)?;
    let subject_var = Var::Text(subject.clone());
    let mut all: Vec<(&str, &Var)> = vars.iter().map(|(k, v)| (*k, v)).collect();
    all.push(("store_name", &store));
    let body_html = fill(html_t, &all, true);
    let body = Var::Html { html: body_html, text: String::new() };
    let layout_vars: Vec<(&str, &Var)> = vec![("subject", &subject_var), ("store_name", &store), ("body", &body)];
    Some(Rendered { html: fill(LAYOUT, &layout_vars, true), text: fill(text_t, &all, false), subject })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paid_order() -> Json {
        json!({
            "order_id": "o-1", "user_id": "u-1",
            "order": {
                "id": "o-1", "status": "paid",
                "lines": [
                    { "name": "Tea <Pot> & Cup", "quantity": 2, "unit_price": { "amount_minor": 1250, "currency": "USD" }, "line_total": { "amount_minor": 2500, "currency": "USD" } },
                ],
                "total": { "amount_minor": 2500, "currency": "USD" }, "refunded": { "amount_minor": 0, "currency": "USD" },
            }
        })
    }

    #[test]
    fn order_confirmation_lists_lines_and_totals_escaped() {
        let r = render("order.paid", &paid_order(), "Shop & Co").unwrap();
        assert_eq!(r.subject, "Order confirmed: o-1");
        assert!(r.html.contains("Tea &lt;Pot&gt; &amp; Cup"), "{}", r.html);
        assert!(!r.html.contains("<Pot>"));
        assert!(r.html.contains("25.00 USD") && r.html.contains("12.50 USD"));
        assert!(r.html.contains("Shop &amp; Co"));
        assert!(r.text.contains("- Tea <Pot> & Cup × 2 @ 12.50 USD = 25.00 USD"), "{}", r.text);
        assert!(!r.html.contains("{{") && !r.text.contains("{{"), "every placeholder filled");
    }

    #[test]
    fn zero_decimal_currencies() {
        assert_eq!(money_text(&json!({ "amount_minor": 4800, "currency": "JPY" })), "4800 JPY");
        assert_eq!(money_text(&json!({ "amount_minor": 5, "currency": "KWD" })), "0.005 KWD");
    }

    #[test]
    fn every_event_with_an_email_renders() {
        let user = json!({ "user": { "first_name": "Ann", "email": "ann@example.com" }, "changed_at": "2026-01-01T00:00:00Z" });
        for (kind, payload) in [
            ("user.registered", user.clone()),
            ("user.password_changed", user.clone()),
            ("order.paid", paid_order()),
            ("order.cancelled", paid_order()),
            ("order.expired", paid_order()),
        ] {
            let r = render(kind, &payload, "Shop").unwrap_or_else(|| panic!("{kind}"));
            assert!(!r.subject.is_empty() && !r.text.contains("{{") && !r.html.contains("{{"), "{kind}");
        }
        let mut shipped = paid_order();
        shipped["order"]["tracking"] = json!({ "carrier": "UPS", "number": "1Z<9>" });
        let r = render("order.shipped", &shipped, "Shop").unwrap();
        assert!(r.html.contains("1Z&lt;9&gt;") && r.text.contains("1Z<9>"));
        let mut invoiced = paid_order();
        invoiced["invoice"] = json!({ "number": "INV-2026-000042", "url": "https://shop.example/account/orders/o-1/invoice?a=1&b=2" });
        let r = render("order.paid", &invoiced, "Shop").unwrap();
        assert!(r.html.contains("INV-2026-000042") && r.html.contains("invoice?a=1&amp;b=2"), "{}", r.html);
        assert!(r.text.contains("Your invoice INV-2026-000042: https://shop.example/account/orders/o-1/invoice?a=1&b=2"), "{}", r.text);
        let mut refunded = paid_order();
        refunded["order"]["refunded"] = json!({ "amount_minor": 500, "currency": "USD" });
        let r = render("order.refunded", &refunded, "Shop").unwrap();
        assert!(r.text.contains("5.00 USD") && r.text.contains("(of 25.00 USD)"), "{}", r.text);
        assert!(render("order.placed", &paid_order(), "Shop").is_none(), "no email for a placed order");
        let mut welcome = user.clone();
        welcome["expires_at"] = json!("2026-01-03T00:00:00Z");
        welcome["secret"] = json!({ "token": "w1", "link": "https://shop.test/account/verify-email?token=w1" });
        let r = render("user.registered", &welcome, "Shop").unwrap();
        assert!(r.text.contains("https://shop.test/account/verify-email?token=w1") && r.html.contains("href=\"https://shop.test/account/verify-email?token=w1\""), "{}", r.text);
        let plain = render("user.registered", &user, "Shop").unwrap();
        assert!(!plain.text.contains("confirm") && !plain.text.contains("{{"), "{}", plain.text);
        for kind in ["user.verification_requested", "user.password_reset_requested"] {
            let mut link = user.clone();
            link["expires_at"] = json!("2026-01-02T00:00:00Z");
            link["secret"] = json!({ "token": "t0k", "link": "https://shop.test/account/x?token=t0k&a=<b>" });
            let r = render(kind, &link, "Shop").unwrap_or_else(|| panic!("{kind}"));
            assert!(r.text.contains("https://shop.test/account/x?token=t0k&a=<b>"), "{}", r.text);
            assert!(r.html.contains("href=\"https://shop.test/account/x?token=t0k&amp;a=&lt;b&gt;\""), "{}", r.html);
            assert!(!r.text.contains("{{") && !r.html.contains("{{"), "{kind}");
            assert!(carries_secret(kind));
            link.as_object_mut().unwrap().remove("secret");
            assert!(render(kind, &link, "Shop").is_none(), "a used link sends nothing");
        }
        let mut returned = paid_order();
        returned["reason"] = json!("paid_after_expired");
        returned["amount"] = json!({ "amount_minor": 4800, "currency": "JPY" });
        let r = render("order.payment_returned", &returned, "Shop").unwrap();
        assert!(r.text.contains("4800 JPY") && r.text.contains("expired before the payment arrived"), "{}", r.text);
        assert!(!r.html.contains("{{"), "{}", r.html);
    }
}
