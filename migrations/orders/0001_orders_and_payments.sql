-- Checkout schema, version 1: orders, their history, payments, Stripe events
-- and the outbox. Owned by the orders and payments components together
-- (label `orders`): a payment event and the order transition it causes must
-- commit in one transaction, so they share one database.
-- Money: integer minor units + ISO 4217 code. Instants compared in SQL are
-- Unix seconds; the rest RFC 3339 UTC text.

CREATE TABLE orders (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    status           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    subtotal_minor   INTEGER NOT NULL CHECK (subtotal_minor >= 0),
    total_minor      INTEGER NOT NULL CHECK (total_minor >= 0),
    refunded_minor   INTEGER NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    shipping_address TEXT,                 -- JSON object or NULL
    carrier          TEXT,
    tracking_number  TEXT,
    flags            TEXT NOT NULL DEFAULT '[]', -- JSON list of problems for an admin
    expires_at       INTEGER NOT NULL,     -- pending_payment lapses at this instant
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE INDEX orders_user ON orders (user_id, created_at);
CREATE INDEX orders_pending ON orders (status, expires_at);

CREATE TABLE order_lines (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL,
    product_id       TEXT NOT NULL,
    sku              TEXT NOT NULL,
    name             TEXT NOT NULL,
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    line_total_minor INTEGER NOT NULL CHECK (line_total_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- Every transition: from, to, actor, reason, time.
CREATE TABLE order_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    TEXT NOT NULL REFERENCES orders (id),
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          TEXT NOT NULL
);

CREATE INDEX order_history_order ON order_history (order_id, id);

-- POST /api/orders idempotency: one row per (user, key).
CREATE TABLE order_requests (
    user_id         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    order_id        TEXT,                  -- NULL while the first request is in flight
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
);

-- One payment record per order (Stripe Checkout Session and/or PaymentIntent).
CREATE TABLE payments (
    order_id          TEXT PRIMARY KEY REFERENCES orders (id),
    checkout_session  TEXT UNIQUE,
    payment_intent    TEXT UNIQUE,
    status            TEXT NOT NULL,       -- awaiting_payment, paid, failed, refunded, partially_refunded
    amount_minor      INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    amount_refunded   INTEGER NOT NULL DEFAULT 0,
    updated_at        TEXT NOT NULL
);

-- Every Stripe event id seen, so each is processed at most once.
CREATE TABLE stripe_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    order_id    TEXT,
    outcome     TEXT NOT NULL,
    received_at TEXT NOT NULL
);

-- Domain events, written in the same transaction as the change they
-- describe; the notifications service delivers them.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type   TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    payload      TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    UNIQUE (event_type, aggregate_id)
);
