-- Postgres version of migrations/notifications/0009_promotion_batches.sql:
-- the Idempotency-Key of the Resend batch a promotion was sent in.
ALTER TABLE deliveries ADD COLUMN batch_key TEXT;
