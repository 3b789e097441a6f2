-- Users schema on Postgres, version 7: the trace context of each outbox
-- event (see migrations/users/0008_event_traces.sql).
ALTER TABLE outbox ADD COLUMN traceparent TEXT, ADD COLUMN tracestate TEXT;
