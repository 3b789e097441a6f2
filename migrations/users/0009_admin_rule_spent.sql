-- Users service schema, version 9: listed `admin_emails` addresses whose
-- account had its role decided (the rule granted admin, or an admin set
-- the role) when that account was deleted. The rule never applies to such
-- an address again, so deleting a demoted account and registering the
-- address anew does not undo the demotion. Only operator-listed addresses
-- (already written in the app's configuration) are kept here.
CREATE TABLE admin_rule_spent (
    email TEXT PRIMARY KEY,
    spent_at TEXT NOT NULL
);
