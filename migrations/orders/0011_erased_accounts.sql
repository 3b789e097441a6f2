-- Checkout schema, version 11: the accounts whose data was erased (their
-- opaque user ids, nothing personal), so that an access token the deleted
-- account still holds cannot place an order with a shipping address after
-- the erasure. Written by the erasure in the same transaction; placing an
-- order checks it inside its own.
CREATE TABLE erased_accounts (
    user_id   TEXT PRIMARY KEY,
    erased_at INTEGER NOT NULL
);
