-- Checkout schema on Postgres, version 7 (the SQLite version 8): restocks
-- owed and not yet recorded (see migrations/orders/0008_owed_restocks.sql).
CREATE TABLE owed_restocks (
    order_id   TEXT NOT NULL,
    operation  TEXT NOT NULL,
    lines      TEXT NOT NULL,
    actor      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (order_id, operation)
);
