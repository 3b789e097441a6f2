-- Checkout schema on Postgres, version 10: the accounts whose data was
-- erased (see migrations/orders/0011_erased_accounts.sql).
CREATE TABLE erased_accounts (
    user_id   TEXT PRIMARY KEY,
    erased_at BIGINT NOT NULL
);
