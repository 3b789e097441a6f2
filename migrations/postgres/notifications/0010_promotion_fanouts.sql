-- Postgres version of migrations/notifications/0010_promotion_fanouts.sql:
-- a promotion is fanned out to the customers who consent a page at a time.
CREATE TABLE promotion_fanouts (
    promotion_id TEXT PRIMARY KEY,
    source_id    BIGINT NOT NULL,
    after_user   TEXT NOT NULL DEFAULT '',
    fanned       BIGINT NOT NULL DEFAULT 0,
    traceparent  TEXT,
    tracestate   TEXT,
    created_at   TEXT NOT NULL,
    done_at      TEXT
);
