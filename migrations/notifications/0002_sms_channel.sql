-- Notifications schema, version 2: SMS as well as email. Each delivery has
-- a `channel` ('email' or 'sms'); an outbox row may now give one delivery
-- per channel, so the uniqueness moves from (source, source_id) to
-- (source, source_id, channel). SQLite cannot drop a table constraint, so
-- the table is rebuilt with its rows (ids kept) in this migration's
-- transaction. For an SMS, `recipient` is the E.164 phone number, `text`
-- the message, `html` empty and `subject` a short label for the admin view.

CREATE TABLE deliveries_v2 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT NOT NULL,
    source_id       INTEGER NOT NULL,
    channel         TEXT NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'sms')),
    event_type      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    html            TEXT NOT NULL,
    text            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'logged', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT,
    provider_id     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (source, source_id, channel)
);

INSERT INTO deliveries_v2 (id, source, source_id, channel, event_type, idempotency_key, recipient, subject, html, text,
                           status, attempts, next_attempt_at, lease_until, last_error, provider_id, created_at, updated_at)
    SELECT id, source, source_id, 'email', event_type, idempotency_key, recipient, subject, html, text,
           status, attempts, next_attempt_at, lease_until, last_error, provider_id, created_at, updated_at
    FROM deliveries;

DROP TABLE deliveries;
ALTER TABLE deliveries_v2 RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
