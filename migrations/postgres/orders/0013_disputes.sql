-- Orders schema on Postgres, version 13: card disputes (see
-- migrations/orders/0014_disputes.sql).
CREATE TABLE disputes (
    id             TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL REFERENCES orders (id),
    payment_intent TEXT,
    amount_minor   BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE INDEX disputes_order ON disputes (order_id);
