-- Notifications service schema, version 1 (label `notifications`).
-- One row per email to deliver, created from the other services' outboxes.
-- A delivery is claimed with a lease before sending, so concurrent sweeps
-- never send it twice, and a sweep that dies mid-send leaves it to be
-- retried after the lease (Resend's Idempotency-Key then stops a duplicate).

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT NOT NULL,           -- which outbox: users, orders
    source_id       INTEGER NOT NULL,        -- the outbox row id
    event_type      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,    -- <event-type>/<entity-id>
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
    UNIQUE (source, source_id)
);

CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);

-- How far each outbox has been read.
CREATE TABLE outbox_cursors (
    source  TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
