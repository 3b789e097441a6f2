-- Notifications schema, version 7: the accounts whose message log was
-- erased (by the account's deletion), by the users service's opaque id. A
-- pull of events that rendered an email or SMS for an account while it was
-- being deleted makes no delivery for it once the erasure is recorded here
-- (see notifications_core::privacy::erase_user).
CREATE TABLE erased_accounts (
    user_id TEXT PRIMARY KEY,
    erased_at TEXT NOT NULL
);
