-- Checkout schema on Postgres, version 9: the trace context of each outbox
-- event (see migrations/orders/0010_event_traces.sql).
ALTER TABLE outbox ADD COLUMN traceparent TEXT, ADD COLUMN tracestate TEXT;
