-- Users service schema on Postgres, version 1: the SQLite migrations
-- 0001-0002 in one (accounts, sessions, refresh tokens, login-failure
-- counters, the outbox). Integers are BIGINT; instants that are compared
-- are Unix seconds, the rest RFC 3339 UTC text.

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

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    created_at     TEXT NOT NULL,
    revoked_at     TEXT,
    revoked_reason TEXT
);

CREATE INDEX sessions_user ON sessions (user_id, revoked_at);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    access_jti  TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    rotated_at  BIGINT
);

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_jti ON refresh_tokens (access_jti);

CREATE TABLE login_failures (
    key               TEXT PRIMARY KEY,
    window_started_at BIGINT NOT NULL,
    failures          BIGINT NOT NULL
);

CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    payload      TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    UNIQUE (event_type, aggregate_id)
);
