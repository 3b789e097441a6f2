-- Checkout schema, version 3: money that arrives for an order that can no
-- longer take it (expired or cancelled before the payment landed, or paid
-- a second time through another PaymentIntent) is returned automatically.
-- One row per PaymentIntent to return: written in the transaction that
-- sees the payment, then refunded through Stripe (Idempotency-Key
-- `auto-refund:<intent>`) right after, and retried by the orders sweep
-- while Stripe cannot be reached.

CREATE TABLE automatic_refunds (
    payment_intent TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL REFERENCES orders (id),
    amount_minor   INTEGER NOT NULL CHECK (amount_minor > 0),
    currency       TEXT NOT NULL,
    reason         TEXT NOT NULL,            -- paid_after_expired, paid_after_cancelled, paid_twice
    status         TEXT NOT NULL CHECK (status IN ('pending', 'refunded', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    stripe_refund  TEXT,
    last_error     TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE INDEX automatic_refunds_pending ON automatic_refunds (status, created_at);
CREATE INDEX automatic_refunds_order ON automatic_refunds (order_id);

-- When an unpaid order ends (cancelled, expired), its open Checkout Session
-- is expired and its PaymentIntent cancelled at Stripe, so nobody can pay
-- for stock that was released: `due` until both calls succeeded (the
-- orders sweep retries), then `done`.
ALTER TABLE payments ADD COLUMN stripe_cleanup TEXT CHECK (stripe_cleanup IN ('due', 'done'));
-- The sweep looks for these only.
CREATE INDEX payments_stripe_cleanup_due ON payments (updated_at) WHERE stripe_cleanup = 'due';
