-- Users service schema on Postgres, version 3 (SQLite's version 4): the
-- address book. Each entry is a postal address validated like an order's shipping address (see the `postal`
-- crate), with an optional label. At most one entry per user is the
-- default shipping address (a partial unique index). Orders keep their own
-- copy of the address they ship to, so changing or deleting an entry never
-- changes an order.

CREATE TABLE addresses (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL REFERENCES users (id),
    label               TEXT,
    name                TEXT NOT NULL,
    line1               TEXT NOT NULL,
    line2               TEXT,
    city                TEXT NOT NULL,
    region              TEXT,
    postal_code         TEXT NOT NULL,
    country             TEXT NOT NULL,
    is_default_shipping BIGINT NOT NULL DEFAULT 0 CHECK (is_default_shipping IN (0, 1)),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

CREATE INDEX addresses_user ON addresses (user_id, created_at);
CREATE UNIQUE INDEX addresses_one_default ON addresses (user_id) WHERE is_default_shipping = 1;
