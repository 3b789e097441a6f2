-- Users service schema, version 11: when whoever holds the account's
-- password first proved they own its address (a verification link followed
-- while signed in to the account, or a password reset). Until then,
-- anything set on the account may be someone else's: anyone can register
-- another person's address. A password reset of an account never proven so
-- clears the phone number, SMS and marketing consent and address book
-- (`users_core::repository::claim_by_reset`). Accounts verified before this
-- version count as proven.
ALTER TABLE users ADD COLUMN owner_proven_at TEXT;
UPDATE users SET owner_proven_at = email_verified_at WHERE email_verified_at IS NOT NULL;
