-- Checkout schema, version 2: refunds by Stripe id (so a replayed refund is
-- never counted twice) and the Checkout Session's expiry (so a retried
-- session request sends Stripe exactly the same parameters).

CREATE TABLE refunds (
    id           TEXT PRIMARY KEY,          -- Stripe refund id
    order_id     TEXT NOT NULL REFERENCES orders (id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    created_at   TEXT NOT NULL
);

CREATE INDEX refunds_order ON refunds (order_id);

ALTER TABLE payments ADD COLUMN session_expires_at INTEGER;
