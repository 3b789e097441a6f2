-- Notifications schema, version 6: each delivery names the account it is
-- for (`user_id`, the users service's id), when the event it was made from
-- names one. A phone number is neither verified nor unique, so an SMS's
-- recipient does not say whose it is: the data export and account deletion
-- find an account's SMS (and emails) by this column, and the check before
-- each SMS asks about this account, not about whoever holds the number.
-- NULL: an event that names no account, or a delivery made before this
-- version (existing rows are kept as they are). Those SMS are left out of
-- export and erasure by account; those emails are found by their address.
ALTER TABLE deliveries ADD COLUMN user_id TEXT;

-- Export and erasure look up one account's deliveries, and the emails to
-- its address among those that name no account (an index that new
-- deliveries, which name theirs, do not grow).
CREATE INDEX deliveries_by_user ON deliveries (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX deliveries_unowned_by_recipient ON deliveries (recipient) WHERE user_id IS NULL;
