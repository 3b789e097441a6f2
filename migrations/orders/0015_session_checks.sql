-- Checkout schema, version 15: when Stripe was last asked about a Checkout
-- Session for the success page's return (Unix seconds), so it is asked at
-- most about once a second per session however often the page is called
-- (`payments_core::ledger::take_stripe_check`).
ALTER TABLE payment_objects ADD COLUMN checked_at INTEGER;
