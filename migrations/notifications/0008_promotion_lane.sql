-- Notifications schema, version 8: promotions are read from the users
-- outbox by a cursor of their own ('users/promotion.send'), so a large
-- promotion never stands in front of a password reset or a verification
-- email, and a customer's request never renders promotions. The users
-- cursor now skips them. Up to this version the users cursor read both, so
-- the promotions cursor starts where it stands.
INSERT INTO outbox_cursors (source, last_id)
SELECT 'users/promotion.send', last_id FROM outbox_cursors WHERE source = 'users';
