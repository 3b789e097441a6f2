-- Checkout schema, version 9: stock changes owed to the catalog.
--
-- An order's change in this database and the matching change of its stock
-- in the catalog's are separate transactions, in that order, so this
-- database's write lock is never held while the catalog's is awaited. The
-- transaction that pays an order owes its sale (`sell`: the hold becomes a
-- sale); the one that cancels or expires an unpaid order owes its release
-- (`release`: the held units are free again). A row is written in that
-- transaction and removed once the catalog has answered: a request that
-- fails between the two leaves it, and the next attempt (Stripe's
-- redelivery, the same request again, the orders sweep, or a restock of
-- the order, which needs the sale first) finishes it. The catalog does each
-- once and answers the same again, so finishing twice changes nothing.
-- An order owes at most one change at a time.
CREATE TABLE owed_stock (
    order_id   TEXT PRIMARY KEY,
    action     TEXT NOT NULL CHECK (action IN ('sell', 'release')),
    created_at INTEGER NOT NULL          -- Unix seconds
);
