-- Checkout schema on Postgres, version 6 (the SQLite version 7): a
-- generation per Idempotency-Key the shop sends to Stripe (see
-- migrations/orders/0007_stripe_key_generations.sql).
CREATE TABLE stripe_key_generations (
    key        TEXT PRIMARY KEY,
    generation BIGINT NOT NULL CHECK (generation >= 2),
    updated_at TEXT NOT NULL
);
