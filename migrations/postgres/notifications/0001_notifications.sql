-- Notifications service schema on Postgres, version 1: deliveries (one row
-- per email, claimed with a lease before sending) and how far each outbox
-- has been read. Integers are BIGINT.

CREATE TABLE deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          TEXT NOT NULL,
    source_id       BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    html            TEXT NOT NULL,
    text            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'logged', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    provider_id     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (source, source_id)
);

CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);

CREATE TABLE outbox_cursors (
    source  TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
);
