-- Postgres version of migrations/orders/0013_outbox_by_aggregate.sql: the
-- outbox by its key, in byte order ("C"), so a key's prefix is a range
-- (`privacy::erase_user` compares with the same collation).
CREATE INDEX outbox_by_aggregate ON outbox (aggregate_id COLLATE "C");
