-- Notifications schema on Postgres, version 2: operational counters for
-- GET /metrics (see migrations/notifications/0002_metrics.sql).
CREATE TABLE ops_counters (
    name       TEXT PRIMARY KEY,
    value      BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
