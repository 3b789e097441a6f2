-- Catalog on Postgres, version 3: product images uploaded to object storage
-- (the SQLite migration 0004_product_images.sql, same meaning).

ALTER TABLE products ADD COLUMN images TEXT NOT NULL DEFAULT '[]';

CREATE TABLE image_uploads (
    id             TEXT PRIMARY KEY,
    product_id     TEXT NOT NULL,
    object_key     TEXT NOT NULL UNIQUE,
    content_type   TEXT NOT NULL,
    content_length BIGINT NOT NULL CHECK (content_length > 0),
    expires_at     BIGINT NOT NULL,
    created_at     TEXT NOT NULL
);

CREATE INDEX image_uploads_by_product ON image_uploads (product_id);
