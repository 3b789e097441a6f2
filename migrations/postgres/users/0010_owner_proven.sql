-- Users schema on Postgres, version 10: when the account's owner was
-- proven (see migrations/users/0011_owner_proven.sql).
ALTER TABLE users ADD COLUMN owner_proven_at TEXT;
UPDATE users SET owner_proven_at = email_verified_at WHERE email_verified_at IS NOT NULL;
