-- Postgres version of migrations/catalog/0007_forgotten_uploads.sql: a
-- forgotten upload keeps its record, marked.
ALTER TABLE image_uploads ADD COLUMN forgotten_at TEXT;
