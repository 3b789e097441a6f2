-- Notifications schema on Postgres, version 5: the trace context of each
-- delivery (see migrations/notifications/0005_delivery_traces.sql).
ALTER TABLE deliveries ADD COLUMN traceparent TEXT, ADD COLUMN tracestate TEXT;
CREATE INDEX deliveries_pending_by_trace ON deliveries (traceparent) WHERE status = 'pending';
