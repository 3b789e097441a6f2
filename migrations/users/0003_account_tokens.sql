-- Users service schema, version 3: proof of email ownership, password
-- reset, and request limits for the emails that carry links.
--
-- `email_verified_at` is set when the owner of the address used a link
-- sent to it (verification or password reset). `role_decided_at` is set
-- when the `admin_emails` rule granted admin or an admin set the role: from
-- then on the rule no longer applies, so a demotion sticks. Accounts that
-- are admins already count as decided.

ALTER TABLE users ADD COLUMN email_verified_at TEXT;
ALTER TABLE users ADD COLUMN role_decided_at TEXT;
UPDATE users SET role_decided_at = updated_at WHERE role = 'admin';

-- Single-use tokens sent by email, stored only as SHA-256 hashes.
-- `email` is the address the token was sent to (a verification proves that
-- address, not whatever the account holds later). `outbox_event` and
-- `outbox_key` name the outbox row that carried the link, scrubbed of it
-- once the token is used or replaced.
CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    user_id    TEXT NOT NULL REFERENCES users (id),
    email      TEXT NOT NULL,
    outbox_event TEXT NOT NULL,
    outbox_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);

-- Requests counted per key in a fixed window, for the emails a client can
-- ask for (`verify:<user id>`, `reset:email:<address>`, `reset:client:<ip>`).
CREATE TABLE request_counts (
    key               TEXT PRIMARY KEY,
    window_started_at INTEGER NOT NULL,
    requests          INTEGER NOT NULL
);
