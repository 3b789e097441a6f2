-- Catalog service schema on Postgres, version 1: the SQLite migrations
-- 0001-0003 in one (categories, products with full-text search, stock
-- reservations and the reserved stock kept per product).
-- Every integer is BIGINT (Spin's Postgres interface sends integers as
-- int8); money is minor units plus an ISO 4217 code; timestamps are RFC 3339
-- UTC text, as on SQLite, so they sort as strings; flags are 0/1.

CREATE TABLE categories (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- `search` is the full-text document: names weighted A, descriptions B, with
-- the `simple` configuration (lower-cased words, no stemming, no stop words,
-- like FTS5's unicode61 tokenizer). A generated column, so every write keeps
-- it current in the same statement.
CREATE TABLE products (
    id            TEXT PRIMARY KEY,
    sku           TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    price_minor   BIGINT NOT NULL CHECK (price_minor >= 0),
    currency      TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    stock_on_hand BIGINT NOT NULL DEFAULT 0 CHECK (stock_on_hand >= 0),
    category_id   TEXT REFERENCES categories (id),
    image_urls    TEXT NOT NULL DEFAULT '[]',
    active        BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    reserved      BIGINT NOT NULL DEFAULT 0,
    search        tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, name), 'A') ||
        setweight(to_tsvector('simple'::regconfig, description), 'B')) STORED,
    CONSTRAINT products_reserved_check CHECK (reserved >= 0 AND reserved <= stock_on_hand)
);

CREATE INDEX products_category ON products (category_id, active);
CREATE INDEX products_price ON products (active, price_minor);
CREATE INDEX products_created ON products (active, created_at);
CREATE INDEX products_name ON products (active, name);
CREATE INDEX products_search ON products USING GIN (search);

-- A reservation holds stock for one order until it is committed, released
-- or lapses (`expires_at`, Unix seconds). `holding` says whether its lines
-- are counted in `products.reserved` (see the SQLite migration 0003).
CREATE TABLE reservations (
    order_id   TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('reserved', 'committed', 'released')),
    expires_at BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    holding    BIGINT NOT NULL DEFAULT 0 CHECK (holding IN (0, 1))
);

CREATE INDEX reservations_live ON reservations (status, expires_at);
CREATE INDEX reservations_holding ON reservations (expires_at) WHERE holding = 1;

CREATE TABLE reservation_lines (
    order_id   TEXT NOT NULL REFERENCES reservations (order_id),
    product_id TEXT NOT NULL REFERENCES products (id),
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);

CREATE INDEX reservation_lines_product ON reservation_lines (product_id);
