-- Notifications schema, version 4: operational counters for GET /metrics
-- (README.md, "Metrics and alerts"): `sweep` counts the runs of
-- POST /api/notifications/sweep and stamps the last (Unix seconds).
CREATE TABLE ops_counters (
    name       TEXT PRIMARY KEY,
    value      INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
