-- Catalog service schema, version 1: categories and products.
-- Owned by the `catalog` component (database label `catalog`).
-- Money is stored as an integer amount in the currency's minor unit plus an
-- ISO 4217 code; timestamps are RFC 3339 UTC text so they sort as strings.

CREATE TABLE categories (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE products (
    id            TEXT PRIMARY KEY,
    sku           TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    price_minor   INTEGER NOT NULL CHECK (price_minor >= 0),
    currency      TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    stock_on_hand INTEGER NOT NULL DEFAULT 0 CHECK (stock_on_hand >= 0),
    category_id   TEXT REFERENCES categories (id),
    image_urls    TEXT NOT NULL DEFAULT '[]',
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE INDEX products_category ON products (category_id, active);
CREATE INDEX products_price ON products (active, price_minor);
CREATE INDEX products_created ON products (active, created_at);
CREATE INDEX products_name ON products (active, name);
