-- Users service schema, version 8: each outbox event keeps the W3C trace
-- context of the request that recorded it (`traceparent` as that request's
-- outbound calls send it, and `tracestate`), so the email it causes is sent
-- in that trace whichever request or sweep delivers it. NULL for events
-- recorded before this version.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
ALTER TABLE outbox ADD COLUMN tracestate TEXT;
