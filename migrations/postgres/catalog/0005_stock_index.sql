-- Catalog schema on Postgres, version 5: GET /metrics counts the active
-- products with no units on hand from this index alone.
CREATE INDEX products_stock ON products (active, stock_on_hand);
