-- Catalog service schema, version 4: product images uploaded to object
-- storage (catalog_core::images).
--
-- `products.images` holds the attached images in display order as a JSON
-- list of {id, key, url, alt}, so product reads need no extra statement.
-- `image_uploads` records every presigned upload the catalog issued: only
-- those keys can be attached, and only to the product they were issued for.

ALTER TABLE products ADD COLUMN images TEXT NOT NULL DEFAULT '[]';

CREATE TABLE image_uploads (
    id             TEXT PRIMARY KEY,
    product_id     TEXT NOT NULL,
    object_key     TEXT NOT NULL UNIQUE,
    content_type   TEXT NOT NULL,
    content_length INTEGER NOT NULL CHECK (content_length > 0),
    expires_at     INTEGER NOT NULL,
    created_at     TEXT NOT NULL
);

CREATE INDEX image_uploads_by_product ON image_uploads (product_id);
