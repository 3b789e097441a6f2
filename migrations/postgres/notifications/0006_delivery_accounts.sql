-- Notifications schema on Postgres, version 6: the account each delivery
-- is for (see migrations/notifications/0006_delivery_accounts.sql).
ALTER TABLE deliveries ADD COLUMN user_id TEXT;
CREATE INDEX deliveries_by_user ON deliveries (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX deliveries_unowned_by_recipient ON deliveries (recipient) WHERE user_id IS NULL;
