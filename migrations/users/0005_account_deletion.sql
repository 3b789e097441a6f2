-- Users service schema, version 5: account deletion. A deleted account's
-- row stays (orders and sessions refer to its id) with its personal data
-- erased: the email becomes `deleted+<id>@erased.invalid` (so the address
-- can register again), the names empty, the password unusable, and
-- `deleted_at` set.

ALTER TABLE users ADD COLUMN deleted_at TEXT;
