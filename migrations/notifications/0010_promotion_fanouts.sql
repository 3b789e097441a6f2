-- Notifications schema, version 10: a promotion is one outbox event in the
-- users database (not one per recipient, which made sending a promotion to
-- a long list one long write there). This table fans it out: the sweep
-- reads the customers who consent a page at a time, in id order, after
-- `after_user`, and makes their deliveries in the same transaction that
-- moves `after_user` on. `fanned` counts the customers read so far and
-- numbers the deliveries (their `source_id`, with `source` =
-- 'promotion/<id>'); `done_at` is set once the last page is read.
CREATE TABLE promotion_fanouts (
    promotion_id TEXT PRIMARY KEY,
    source_id    INTEGER NOT NULL,          -- the users outbox row of the promotion
    after_user   TEXT NOT NULL DEFAULT '',
    fanned       INTEGER NOT NULL DEFAULT 0,
    traceparent  TEXT,
    tracestate   TEXT,
    created_at   TEXT NOT NULL,
    done_at      TEXT
);
