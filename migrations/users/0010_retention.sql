-- Users service schema, version 10: indexes for retention
-- (`users_core::retention`). Ended counts, refresh tokens and emailed links
-- a day past their expiry are removed a few at a time by the requests that
-- make such rows; these indexes let each removal find the oldest rows
-- without reading the table.
CREATE INDEX login_failures_window ON login_failures (window_started_at);
CREATE INDEX request_counts_window ON request_counts (window_started_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE INDEX account_tokens_expiry ON account_tokens (expires_at);
