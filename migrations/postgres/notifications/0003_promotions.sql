-- Notifications on Postgres, version 3: promotional email. `headers` holds extra
-- email headers as a JSON object (a promotion's `List-Unsubscribe` and
-- `List-Unsubscribe-Post`, RFC 8058); NULL for the others. `pacing` keeps
-- the earliest time (Unix milliseconds) the next promotional batch may go
-- to Resend, shared by every sweep and instance, so promotions stay under
-- Resend's team rate limit with room left for transactional email. A lane's
-- row is made by its first use (a migrated database holds no data).

ALTER TABLE deliveries ADD COLUMN headers TEXT;

CREATE TABLE pacing (
    lane       TEXT PRIMARY KEY,
    next_at_ms BIGINT NOT NULL
);
