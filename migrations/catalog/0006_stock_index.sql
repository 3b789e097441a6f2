-- Catalog schema, version 6: GET /metrics counts the active products with
-- no units on hand from this index alone (README.md, "Metrics and alerts").
CREATE INDEX products_stock ON products (active, stock_on_hand);
