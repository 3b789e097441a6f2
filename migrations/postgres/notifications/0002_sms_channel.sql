-- Notifications on Postgres, version 2: SMS as well as email (see the
-- SQLite migration 0002_sms_channel.sql). One delivery per outbox row and
-- channel: the unique constraint gains `channel`.

ALTER TABLE deliveries ADD COLUMN channel TEXT NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'sms'));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_source_source_id_key;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_source_source_id_channel_key UNIQUE (source, source_id, channel);
