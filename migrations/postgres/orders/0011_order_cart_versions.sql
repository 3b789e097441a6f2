-- Orders schema on Postgres, version 11: the cart version an order was
-- placed from (see migrations/orders/0012_order_cart_versions.sql).
ALTER TABLE orders ADD COLUMN cart_version BIGINT;
CREATE UNIQUE INDEX orders_by_cart_version ON orders (user_id, cart_version) WHERE cart_version IS NOT NULL;
