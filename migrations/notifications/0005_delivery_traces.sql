-- Notifications schema, version 5: each delivery keeps the trace context
-- of the event it was made from (the outbox row's `traceparent` and
-- `tracestate`), and its sends to Resend or Twilio carry it, so an email is
-- sent in the trace of the request that caused it, not of whichever
-- request or sweep happens to deliver it. NULL: sent in the delivering
-- request's trace (promotions, and deliveries made before this version).
ALTER TABLE deliveries ADD COLUMN traceparent TEXT;
ALTER TABLE deliveries ADD COLUMN tracestate TEXT;
