-- Users service schema, version 2: the outbox of domain events
-- (`user.registered`, `user.password_changed`), written in the same
-- transaction as the change; the notifications service delivers them.

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type   TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    payload      TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    UNIQUE (event_type, aggregate_id)
);
