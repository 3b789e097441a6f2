-- Users schema on Postgres, version 9: indexes for retention (see
-- migrations/users/0010_retention.sql).
CREATE INDEX login_failures_window ON login_failures (window_started_at);
CREATE INDEX request_counts_window ON request_counts (window_started_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE INDEX account_tokens_expiry ON account_tokens (expires_at);
