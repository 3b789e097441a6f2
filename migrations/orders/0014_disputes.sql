-- Orders schema, version 14: card disputes (chargebacks). Stripe tells the
-- shop with `charge.dispute.*` events; each dispute is kept here, by
-- Stripe's id, with its status as last told. While a dispute of an order
-- is open or lost, the order is flagged and cannot be fulfilled.
CREATE TABLE disputes (
    id             TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL REFERENCES orders (id),
    payment_intent TEXT,
    amount_minor   INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE INDEX disputes_order ON disputes (order_id);
