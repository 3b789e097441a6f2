-- Orders schema on Postgres, version 14: when Stripe was last asked about
-- a Checkout Session (see migrations/orders/0015_session_checks.sql).
ALTER TABLE payment_objects ADD COLUMN checked_at BIGINT;
