-- Notifications schema on Postgres, version 7: the accounts whose message
-- log was erased (see migrations/notifications/0007_erased_accounts.sql).
CREATE TABLE erased_accounts (
    user_id TEXT PRIMARY KEY,
    erased_at TEXT NOT NULL
);
