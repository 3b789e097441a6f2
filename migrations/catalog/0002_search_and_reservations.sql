-- Catalog service schema, version 2: full-text search and stock reservations.

-- Full-text index over product names and descriptions (FTS5, external
-- content: the text lives once, in `products`). Triggers keep it in sync on
-- every write, in the same transaction as the write.
CREATE VIRTUAL TABLE products_fts USING fts5(
    name,
    description,
    content = 'products',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name, description) VALUES (new.rowid, new.name, new.description);
END;

CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description) VALUES ('delete', old.rowid, old.name, old.description);
END;

CREATE TRIGGER products_fts_update AFTER UPDATE OF name, description ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description) VALUES ('delete', old.rowid, old.name, old.description);
    INSERT INTO products_fts (rowid, name, description) VALUES (new.rowid, new.name, new.description);
END;

INSERT INTO products_fts (products_fts) VALUES ('rebuild');

-- A reservation holds stock for one order until it is committed (paid: the
-- stock is sold and leaves `stock_on_hand`), released (cancelled, failed,
-- expired) or lapses (`expires_at`, Unix seconds, passed: it stops counting
-- even if nobody releases it).
CREATE TABLE reservations (
    order_id   TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('reserved', 'committed', 'released')),
    expires_at INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX reservations_live ON reservations (status, expires_at);

CREATE TABLE reservation_lines (
    order_id   TEXT NOT NULL REFERENCES reservations (order_id),
    product_id TEXT NOT NULL REFERENCES products (id),
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);

CREATE INDEX reservation_lines_product ON reservation_lines (product_id);
