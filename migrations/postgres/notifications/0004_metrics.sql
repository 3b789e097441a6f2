-- Notifications schema on Postgres, version 4: operational counters for
-- GET /metrics (see migrations/notifications/0004_metrics.sql).
CREATE TABLE ops_counters (
    name       TEXT PRIMARY KEY,
    value      BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
