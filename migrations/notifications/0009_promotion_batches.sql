-- Notifications schema, version 9: the Idempotency-Key of the Resend batch
-- a promotional delivery was sent in. Set just before the batch is sent;
-- a batch that must be tried again (an unclear failure, or a sweep that
-- died mid-send) is claimed again as the same set under the same key, so
-- Resend, which keeps a key's answer, never sends its emails twice.
ALTER TABLE deliveries ADD COLUMN batch_key TEXT;
