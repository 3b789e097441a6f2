-- Orders schema, version 13: the outbox by its key. Erasing an account's
-- data rewrites the outbox events of its orders (keyed `<order>` or
-- `<order>:<detail>`, or by the PaymentIntent of an automatic refund)
-- under the outbox's lock; without this index each erasure read the whole
-- outbox, which only grows, and order writers waited for it.
CREATE INDEX outbox_by_aggregate ON outbox (aggregate_id);
