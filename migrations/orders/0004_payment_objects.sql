-- Checkout schema, version 4: payments as their own objects. One row per
-- Stripe object created for an order or seen in one of its events, with
-- Stripe's own status for it: Checkout Sessions (open, complete,
-- expired), PaymentIntents (requires_payment_method, processing,
-- succeeded, canceled), charges and refunds (pending, succeeded, failed,
-- canceled). Events act on an order only through objects that belong to
-- it. `payments` stays as each order's summary (its current session, the
-- intent that paid, the cleanup mark); refunds move here.

CREATE TABLE payment_objects (
    id              TEXT PRIMARY KEY,                -- Stripe's id: cs_..., pi_..., ch_..., re_...
    order_id        TEXT NOT NULL REFERENCES orders (id),
    kind            TEXT NOT NULL CHECK (kind IN ('checkout_session', 'payment_intent', 'charge', 'refund')),
    status          TEXT NOT NULL,
    parent_id       TEXT,                            -- a session's intent: the session; a charge: its intent; a refund: the intent it returns money from
    origin          TEXT NOT NULL CHECK (origin IN ('shop', 'event')), -- created by this shop, or first known from a Stripe event
    amount_minor    INTEGER CHECK (amount_minor >= 0), -- intent and charge: captured; refund: returned
    amount_refunded INTEGER NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0), -- intent and charge: Stripe's refunded total
    currency        TEXT,
    expires_at      INTEGER,                         -- Checkout Session: Unix seconds
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE INDEX payment_objects_order ON payment_objects (order_id, created_at);
CREATE INDEX payment_objects_parent ON payment_objects (parent_id) WHERE parent_id IS NOT NULL;

-- What earlier versions knew: each order's latest session and intent, and its refunds.
INSERT INTO payment_objects (id, order_id, kind, status, origin, amount_minor, currency, expires_at, created_at, updated_at)
SELECT checkout_session, order_id, 'checkout_session',
       CASE WHEN status IN ('paid', 'refunded', 'partially_refunded') THEN 'complete'
            WHEN stripe_cleanup = 'done' THEN 'expired' ELSE 'open' END,
       'shop', NULL, currency, session_expires_at, updated_at, updated_at
FROM payments WHERE checkout_session IS NOT NULL;

INSERT INTO payment_objects (id, order_id, kind, status, parent_id, origin, amount_minor, amount_refunded, currency, created_at, updated_at)
SELECT payment_intent, order_id, 'payment_intent',
       CASE WHEN status IN ('paid', 'refunded', 'partially_refunded') THEN 'succeeded'
            WHEN stripe_cleanup = 'done' THEN 'canceled' ELSE 'requires_payment_method' END,
       checkout_session, 'event',
       CASE WHEN status IN ('paid', 'refunded', 'partially_refunded') THEN amount_minor END,
       amount_refunded, currency, updated_at, updated_at
FROM payments WHERE payment_intent IS NOT NULL;

INSERT INTO payment_objects (id, order_id, kind, status, parent_id, origin, amount_minor, currency, created_at, updated_at)
SELECT r.id, r.order_id, 'refund', 'succeeded', p.payment_intent, 'shop', r.amount_minor, p.currency, r.created_at, r.created_at
FROM refunds r LEFT JOIN payments p ON p.order_id = r.order_id;

DROP TABLE refunds;
