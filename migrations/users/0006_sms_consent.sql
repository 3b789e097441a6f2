-- Users service schema, version 6: a phone number for SMS, and the
-- customer's explicit consent to SMS about their orders. `sms_consent_at`
-- is when they gave it (NULL: no consent, never pre-ticked); the
-- notifications service sends an SMS only to a number with consent.

ALTER TABLE users ADD COLUMN phone TEXT;
ALTER TABLE users ADD COLUMN sms_consent_at TEXT;
