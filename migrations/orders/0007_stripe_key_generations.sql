-- Checkout schema, version 7: a generation per Idempotency-Key the shop
-- sends to Stripe.
--
-- Stripe keeps the first answer of a request made with a key, 500s
-- included, and replays it for 24 hours. When Stripe answers a call with a
-- 5xx, the shop moves that call's key to its next generation, and the next
-- attempt sends `<key>#<generation>` (payments-core `stripe_keys`). A key
-- without a row is at generation 1 and is sent as it is. Refunds look for
-- a refund an earlier generation made before they use a new one.
CREATE TABLE stripe_key_generations (
    key        TEXT PRIMARY KEY,          -- the logical key, e.g. payment-intent:<order>
    generation INTEGER NOT NULL CHECK (generation >= 2),
    updated_at TEXT NOT NULL
);
