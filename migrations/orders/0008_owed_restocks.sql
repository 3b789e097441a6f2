-- Checkout schema, version 8: restocks owed and not yet recorded.
--
-- A restock (cancelling a paid order, or a refund with `restock`) puts units
-- back in the catalog database, then notes it in this one. A row here is
-- written before the catalog is asked (for a cancellation, in the very
-- transaction that cancels), and removed in the transaction that writes
-- the note: a request that fails between the two leaves the row, and the
-- next attempt (the same request again, or the orders sweep) finishes it.
-- The catalog does each (order, operation) once and answers the same again,
-- so finishing never puts units back twice.
CREATE TABLE owed_restocks (
    order_id   TEXT NOT NULL,
    operation  TEXT NOT NULL,            -- `cancel`, or the Stripe refund id
    lines      TEXT NOT NULL,            -- JSON: [] = every unit still sold, else [[product_id, quantity], ...]
    actor      TEXT NOT NULL,            -- who chose it, for the note
    created_at INTEGER NOT NULL,         -- Unix seconds
    PRIMARY KEY (order_id, operation)
);
