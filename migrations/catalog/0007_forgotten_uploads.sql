-- Catalog service schema, version 7: an upload forgotten by an operator
-- (`POST /api/catalog/images/unused/forget`) keeps its record, marked, so
-- a forget asked again (its first answer lost) answers the key again, and
-- such a key is never attached or listed as unused again.
ALTER TABLE image_uploads ADD COLUMN forgotten_at TEXT;
