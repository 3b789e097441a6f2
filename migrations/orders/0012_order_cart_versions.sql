-- Orders schema, version 12: the version of the cart an order was placed
-- from (the cart service's, which only grows per account). One order per
-- account and cart version: a second placement of the same cart at the same
-- moment (two tabs, a double click without an Idempotency-Key) fails on this
-- index inside its transaction and is answered 409 `cart_already_ordered`.
-- NULL for orders placed before this version.
ALTER TABLE orders ADD COLUMN cart_version INTEGER;
CREATE UNIQUE INDEX orders_by_cart_version ON orders (user_id, cart_version) WHERE cart_version IS NOT NULL;
