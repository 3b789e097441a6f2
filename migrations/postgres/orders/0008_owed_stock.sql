-- Checkout schema on Postgres, version 8 (the SQLite version 9): stock
-- changes owed to the catalog (see migrations/orders/0009_owed_stock.sql).
CREATE TABLE owed_stock (
    order_id   TEXT PRIMARY KEY,
    action     TEXT NOT NULL CHECK (action IN ('sell', 'release')),
    created_at BIGINT NOT NULL
);
