-- Catalog schema, version 5: restocking. The units of a sale that is undone
-- (a paid order cancelled or refunded) go back on hand when an admin says
-- so. `reservation_lines.returned` counts the units of each sold line that
-- went back, so a line never returns more than it sold; `restocks` records
-- each restock under its operation id (the Stripe refund, or the
-- cancellation), so a retried request restocks once.

ALTER TABLE reservation_lines ADD COLUMN returned INTEGER NOT NULL DEFAULT 0
    CHECK (returned >= 0 AND returned <= quantity);

CREATE TABLE restocks (
    order_id     TEXT NOT NULL REFERENCES reservations (order_id),
    operation_id TEXT NOT NULL,
    lines        TEXT NOT NULL,              -- JSON: [{"product_id", "quantity"}] put back
    created_at   TEXT NOT NULL,
    PRIMARY KEY (order_id, operation_id)
);
