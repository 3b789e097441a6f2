-- Notifications schema, version 5: each delivery keeps the trace context
-- of the event it was made from (the outbox row's `traceparent` and
-- `tracestate`), and its sends to Resend or Twilio carry it, so an email is
-- sent in the trace of the request that caused it, not of whichever
-- request or sweep happens to deliver it, and that request's in-process
-- nudge can claim exactly its own deliveries. NULL: sent in the delivering
-- request's trace (promotions, and deliveries made before this version).
ALTER TABLE deliveries ADD COLUMN traceparent TEXT;
ALTER TABLE deliveries ADD COLUMN tracestate TEXT;

-- The in-process nudge of a request claims that request's own pending
-- deliveries by their `traceparent` (see http_kit::nudge).
CREATE INDEX deliveries_pending_by_trace ON deliveries (traceparent) WHERE status = 'pending';
