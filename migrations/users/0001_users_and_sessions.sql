-- Users service schema, version 1: accounts, sessions, refresh tokens and
-- login-failure counters. Owned by the `users` component (label `users`).
-- Instants that are compared (expiry, windows) are Unix seconds; the rest are
-- RFC 3339 UTC text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,      -- trimmed, lower-cased
    password_hash TEXT NOT NULL,             -- Argon2id PHC string
    first_name    TEXT NOT NULL,
    last_name     TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'admin')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- A session is one login; all refresh tokens rotated from it form its family.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    created_at     TEXT NOT NULL,
    revoked_at     TEXT,
    revoked_reason TEXT
);

CREATE INDEX sessions_user ON sessions (user_id, revoked_at);

-- Refresh tokens are stored only as SHA-256 hashes. `access_jti` is the id of
-- the access token issued with this refresh token, which ties an access
-- token to its session (for "revoke every other session").
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    access_jti  TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER
);

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_jti ON refresh_tokens (access_jti);

-- Failed logins per key (`email:<address>` or `client:<ip>`) in a fixed window.
CREATE TABLE login_failures (
    key               TEXT PRIMARY KEY,
    window_started_at INTEGER NOT NULL,
    failures          INTEGER NOT NULL
);
