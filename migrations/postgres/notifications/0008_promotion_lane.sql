-- Postgres version of migrations/notifications/0008_promotion_lane.sql:
-- promotions get their own cursor in the users outbox, starting where the
-- users cursor (which read them until now) stands.
INSERT INTO outbox_cursors (source, last_id)
SELECT 'users/promotion.send', last_id FROM outbox_cursors WHERE source = 'users';
