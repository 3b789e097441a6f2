-- Users service schema, version 7: promotional email with consent.
-- `marketing_consent_at`: when the customer opted in to promotions (NULL:
-- no consent; never pre-ticked; cleared by a one-click unsubscribe).
-- `promotions`: each promotion an admin sent, with its content; the
-- notifications service reads it to render the emails, one outbox row
-- (`promotion.send`) per consenting customer at the time of sending.

ALTER TABLE users ADD COLUMN marketing_consent_at TEXT;

CREATE TABLE promotions (
    id          TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    html        TEXT NOT NULL,
    text        TEXT NOT NULL,
    recipients  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
