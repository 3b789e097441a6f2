//! Promotional email: rendered from a promotion the users service recorded
//! (subject, HTML and text written by an admin), one per consenting
//! customer, each with a signed one-click unsubscribe link in its body and
//! in `List-Unsubscribe` / `List-Unsubscribe-Post` headers (RFC 8058).
//! Sent in batches through Resend's batch endpoint, at most one batch per
//! [`BATCH_GAP_MS`] across all instances (see `deliveries::take_promotion_slot`).

use crate::deliveries::{OwnEmail, Recipient};
use crate::templates::html_escape;
use serde_json::json;

/// What an unsubscribe link signs (the users service checks the same).
pub const UNSUBSCRIBE_PURPOSE: &str = "unsubscribe";
/// Emails per Resend batch request (Resend's maximum).
pub const BATCH_SIZE: u32 = 100;
/// At most one promotional batch per second: Resend's default team limit is
/// 2 requests per second, so transactional email keeps the other.
pub const BATCH_GAP_MS: i64 = 1000;

/// The one-click unsubscribe URL for `user_id`.
pub fn unsubscribe_link(storefront_url: &str, secret: &str, user_id: &str) -> String {
    let sig = http_kit::signed_links::sign(secret, UNSUBSCRIBE_PURPOSE, user_id);
    format!("{}/api/users/unsubscribe?user={user_id}&sig={sig}", storefront_url.trim_end_matches('/'))
}

/// A promotion's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The email of `promotion` to `to`, with its unsubscribe link and headers.
/// The admin's HTML is used as written (admins are trusted authors); the
/// footer's values are escaped.
pub fn render(promotion: &Promotion, to: Recipient, link: &str, store_name: &str) -> OwnEmail {
    let why = format!("You get this email because you opted in to offers from {store_name}.");
    let html = format!(
        "{}\n<hr>\n<p style=\"font-size:12px;color:#666\">{} <a href=\"{}\">Unsubscribe</a> (order and account emails are not affected).</p>",
        promotion.html,
        html_escape(&why),
        html_escape(link)
    );
    let text = format!("{}\n\n--\n{why} Unsubscribe: {link}\n(Order and account emails are not affected.)", promotion.text);
    let headers = json!({
        "List-Unsubscribe": format!("<{link}>"),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    });
    OwnEmail { to, subject: promotion.subject.clone(), html, text, headers: Some(headers.to_string()) }
}

/// The customer a promotional delivery is for, from its idempotency key
/// (`promotion.send/<promotion id>/<user id>`).
pub fn user_of(idempotency_key: &str) -> Option<&str> {
    idempotency_key.strip_prefix("promotion.send/")?.split('/').nth(1).filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotions_carry_a_signed_one_click_unsubscribe() {
        let link = unsubscribe_link("https://shop.example/", "k", "u-1");
        assert_eq!(link, format!("https://shop.example/api/users/unsubscribe?user=u-1&sig={}", http_kit::signed_links::sign("k", "unsubscribe", "u-1")));
        let p = Promotion { subject: "Sale".into(), html: "<h1>50% off</h1>".into(), text: "50% off".into() };
        let e = render(&p, Recipient::of_account("u-1", "ann@example.com"), &link, "Shop & Co");
        assert!(e.html.starts_with("<h1>50% off</h1>") && e.html.contains("Shop &amp; Co") && e.html.contains(&link.replace('&', "&amp;")));
        assert!(e.text.contains(&format!("Unsubscribe: {link}")));
        let h: serde_json::Value = serde_json::from_str(e.headers.as_deref().unwrap()).unwrap();
        assert_eq!(h["List-Unsubscribe"], format!("<{link}>"));
        assert_eq!(h["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
    }

    #[test]
    fn the_customer_is_read_from_the_key() {
        assert_eq!(user_of("promotion.send/p-1/u-1"), Some("u-1"));
        assert_eq!(user_of("order.paid/o-1"), None);
        assert_eq!(user_of("promotion.send/p-1"), None);
    }
}
