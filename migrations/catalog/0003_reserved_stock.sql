-- Catalog service schema, version 3: reserved stock kept per product.
--
-- Before, every read summed the lines of every live reservation, so the
-- listing slowed down as pending orders grew. Now each product carries the
-- units its live reservations hold (`reserved`), changed in the same
-- transaction as the reservation that causes it, by conditional updates that
-- refuse to hold more than is on hand. Reads are O(page) again.
--
-- `reservations.holding` says whether a reservation's lines are counted in
-- `products.reserved`: 1 from the moment it is made until it is committed,
-- released, or found lapsed by the next stock write (which gives the units
-- back). A lapsed reservation nobody has swept yet still has holding = 1;
-- reads subtract those few through the partial index below, so a lapsed
-- hold stops counting at once, as before.

ALTER TABLE products ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0
    CHECK (reserved >= 0 AND reserved <= stock_on_hand);

ALTER TABLE reservations ADD COLUMN holding INTEGER NOT NULL DEFAULT 0 CHECK (holding IN (0, 1));

-- Live reservations hold their units; lapsed ones are left unheld (they may
-- still be committed while their stock is free, as before).
UPDATE reservations SET holding = 1
    WHERE status = 'reserved' AND expires_at > CAST(strftime('%s', 'now') AS INTEGER);

UPDATE products SET reserved = (
    SELECT COALESCE(SUM(l.quantity), 0) FROM reservation_lines l
    JOIN reservations r ON r.order_id = l.order_id
    WHERE r.holding = 1 AND l.product_id = products.id);

-- Only holding reservations are indexed: the live ones and the lapsed ones
-- not yet swept, never the history.
CREATE INDEX reservations_holding ON reservations (expires_at) WHERE holding = 1;
