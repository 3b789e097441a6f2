-- Users schema on Postgres, version 8: listed admin addresses the
-- admin_emails rule no longer applies to (see
-- migrations/users/0009_admin_rule_spent.sql).
CREATE TABLE admin_rule_spent (
    email TEXT PRIMARY KEY,
    spent_at TEXT NOT NULL
);
