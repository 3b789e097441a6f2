-- Checkout schema, version 6: what GET /metrics reads, kept cheap.
--
-- `ops_counters`: operational counters (README.md, "Metrics and alerts"):
-- `sweep` (runs of POST /api/orders/sweep, and when it last ran) and
-- `stripe_webhook_bad_signature` (webhook requests refused for a missing,
-- wrong or stale signature). One upsert per event; Unix seconds.
CREATE TABLE ops_counters (
    name       TEXT PRIMARY KEY,
    value      INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Orders by status and paid revenue per currency are read from this index
-- alone (a covering index: no table rows are touched).
CREATE INDEX orders_status_totals ON orders (status, currency, total_minor, refunded_minor);

-- Flagged orders are few: a partial index holds only them.
CREATE INDEX orders_flagged ON orders (id) WHERE flags <> '[]';
