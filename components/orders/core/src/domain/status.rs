//! The order state machine, in one place.
//!
//! ```text
//! pending_payment ─┬─> paid ──> processing ──> shipped ──> delivered
//!                  ├─> cancelled          (paid/processing ─> cancelled: refund)
//!                  └─> expired ──> paid   (a late payment honoured: its
//!                                          units were all still free)
//! paid, processing, shipped, delivered ─> refunded   (refunded in full)
//! ```
//!
//! A partial refund changes no status: the order's `refunded` amount grows
//! and fulfilment goes on. `partially_refunded` is no longer entered; orders
//! stored in it by earlier versions can still be processed, shipped,
//! delivered or refunded in full.
//!
//! A transition that is not allowed is an error value carrying the current
//! status; nothing panics and nothing fails silently.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    PendingPayment,
    Paid,
    Processing,
    Shipped,
    Delivered,
    Cancelled,
    Expired,
    Refunded,
    PartiallyRefunded,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::PendingPayment,
        Status::Paid,
        Status::Processing,
        Status::Shipped,
        Status::Delivered,
        Status::Cancelled,
        Status::Expired,
        Status::Refunded,
        Status::PartiallyRefunded,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Status::PendingPayment => "pending_payment",
            Status::Paid => "paid",
            Status::Processing => "processing",
            Status::Shipped => "shipped",
            Status::Delivered => "delivered",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::Refunded => "refunded",
            Status::PartiallyRefunded => "partially_refunded",
        }
    }

    pub fn parse(raw: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Has the customer's money been taken (and not fully returned)?
    pub fn is_paid(&self) -> bool {
        matches!(self, Status::Paid | Status::Processing | Status::Shipped | Status::Delivered | Status::PartiallyRefunded)
    }

    /// Can this transition happen?
    pub fn can_become(&self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (PendingPayment, Paid | Cancelled | Expired)
                | (Expired, Paid)
                | (Paid, Processing | Cancelled)
                | (Processing, Shipped | Cancelled)
                | (Shipped, Delivered)
                | (Paid | Processing | Shipped | Delivered | PartiallyRefunded, Refunded)
                | (PartiallyRefunded, Processing | Shipped | Delivered)
        )
    }

    /// The checked transition.
    pub fn to(&self, to: Status) -> Result<Status, InvalidTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(InvalidTransition { from: *self, to })
        }
    }

    /// Can the owner still cancel (before shipping)?
    pub fn cancellable_by_customer(&self) -> bool {
        matches!(self, Status::PendingPayment | Status::Paid | Status::Processing)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTransition {
    pub from: Status,
    pub to: Status,
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an order that is {} cannot become {}", self.from, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn the_happy_path() {
        let mut s = PendingPayment;
        for next in [Paid, Processing, Shipped, Delivered, Refunded] {
            s = s.to(next).unwrap();
        }
        assert_eq!(s, Refunded);
    }

    #[test]
    fn nothing_moves_backwards_or_out_of_a_final_state() {
        for to in Status::ALL {
            assert!(!Cancelled.can_become(to), "cancelled -> {to}");
            assert!(!Expired.can_become(to) || to == Paid, "expired -> {to}: only a late payment, honoured");
            assert!(!Refunded.can_become(to), "refunded -> {to}");
        }
        assert_eq!(Paid.to(PendingPayment), Err(InvalidTransition { from: Paid, to: PendingPayment }));
        assert!(!Shipped.can_become(Processing));
        assert!(!Shipped.can_become(Cancelled), "no cancelling after shipping");
        assert!(!PendingPayment.can_become(Refunded), "nothing to refund");
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("lost"), None);
    }

    #[test]
    fn customer_cancellation_window() {
        assert!(PendingPayment.cancellable_by_customer() && Paid.cancellable_by_customer() && Processing.cancellable_by_customer());
        assert!(!Shipped.cancellable_by_customer() && !Delivered.cancellable_by_customer());
    }
}
