-- Checkout schema, version 9: stock commits owed by paid orders.
--
-- A payment marks its order paid in this database, then asks the catalog to
-- turn the order's stock hold into a sale. The two are separate
-- transactions, so the checkout database's write lock is never held while
-- the catalog's is awaited. A row here is written in the transaction that
-- pays the order, and removed once the catalog has answered: a request that
-- fails between the two leaves the row, and the next attempt (Stripe's
-- redelivery, the success page again, the orders sweep, or a restock of the
-- order, which needs the sale first) finishes it. The catalog commits a
-- reservation once and answers the same again, so finishing never sells
-- units twice.
CREATE TABLE owed_sales (
    order_id   TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL          -- Unix seconds
);
