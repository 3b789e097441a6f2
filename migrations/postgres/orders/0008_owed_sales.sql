-- Checkout schema on Postgres, version 8 (the SQLite version 9): stock
-- commits owed by paid orders (see migrations/orders/0009_owed_sales.sql).
CREATE TABLE owed_sales (
    order_id   TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
