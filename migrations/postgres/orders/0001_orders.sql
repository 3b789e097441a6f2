-- Checkout schema on Postgres, version 1: the SQLite migrations 0001-0002 in
-- one (orders, lines, history, request idempotency, payments, refunds,
-- Stripe events, the outbox). Integers are BIGINT; instants compared in SQL
-- are Unix seconds, the rest RFC 3339 UTC text.

CREATE TABLE orders (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    status           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    subtotal_minor   BIGINT NOT NULL CHECK (subtotal_minor >= 0),
    total_minor      BIGINT NOT NULL CHECK (total_minor >= 0),
    refunded_minor   BIGINT NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    shipping_address TEXT,
    carrier          TEXT,
    tracking_number  TEXT,
    flags            TEXT NOT NULL DEFAULT '[]',
    expires_at       BIGINT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE INDEX orders_user ON orders (user_id, created_at);
CREATE INDEX orders_pending ON orders (status, expires_at);

CREATE TABLE order_lines (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    line_no          BIGINT NOT NULL,
    product_id       TEXT NOT NULL,
    sku              TEXT NOT NULL,
    name             TEXT NOT NULL,
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    line_total_minor BIGINT NOT NULL CHECK (line_total_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE order_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    TEXT NOT NULL REFERENCES orders (id),
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          TEXT NOT NULL
);

CREATE INDEX order_history_order ON order_history (order_id, id);

CREATE TABLE order_requests (
    user_id         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    order_id        TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
);

CREATE TABLE payments (
    order_id           TEXT PRIMARY KEY REFERENCES orders (id),
    checkout_session   TEXT UNIQUE,
    payment_intent     TEXT UNIQUE,
    status             TEXT NOT NULL,
    amount_minor       BIGINT NOT NULL,
    currency           TEXT NOT NULL,
    amount_refunded    BIGINT NOT NULL DEFAULT 0,
    updated_at         TEXT NOT NULL,
    session_expires_at BIGINT
);

CREATE TABLE stripe_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    order_id    TEXT,
    outcome     TEXT NOT NULL,
    received_at TEXT NOT NULL
);

CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    payload      TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    UNIQUE (event_type, aggregate_id)
);

CREATE TABLE refunds (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL REFERENCES orders (id),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    created_at   TEXT NOT NULL
);

CREATE INDEX refunds_order ON refunds (order_id);
