-- Checkout schema on Postgres, version 5: what GET /metrics reads, kept
-- cheap (see migrations/orders/0006_metrics.sql). Integers are BIGINT.
CREATE TABLE ops_counters (
    name       TEXT PRIMARY KEY,
    value      BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX orders_status_totals ON orders (status, currency, total_minor, refunded_minor);

CREATE INDEX orders_flagged ON orders (id) WHERE flags <> '[]';
