//! The users database's schema, embedded from `migrations/users/`.

use storage::migrations::Migration;

/// The Spin SQLite label of the users database.
pub const DATABASE_LABEL: &str = "users";

/// Every users migration, in order (a test checks this against the folder).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "users_and_sessions",
        sql: include_str!("../../../../migrations/users/0001_users_and_sessions.sql"),
    },
    Migration { version: 2, name: "outbox", sql: include_str!("../../../../migrations/users/0002_outbox.sql") },
    Migration { version: 3, name: "account_tokens", sql: include_str!("../../../../migrations/users/0003_account_tokens.sql") },
    Migration { version: 4, name: "addresses", sql: include_str!("../../../../migrations/users/0004_addresses.sql") },
    Migration { version: 5, name: "account_deletion", sql: include_str!("../../../../migrations/users/0005_account_deletion.sql") },
    Migration { version: 6, name: "sms_consent", sql: include_str!("../../../../migrations/users/0006_sms_consent.sql") },
    Migration { version: 7, name: "promotions", sql: include_str!("../../../../migrations/users/0007_promotions.sql") },
    Migration { version: 8, name: "event_traces", sql: include_str!("../../../../migrations/users/0008_event_traces.sql") },
    Migration { version: 9, name: "admin_rule_spent", sql: include_str!("../../../../migrations/users/0009_admin_rule_spent.sql") },
    Migration { version: 10, name: "retention", sql: include_str!("../../../../migrations/users/0010_retention.sql") },
    Migration { version: 11, name: "owner_proven", sql: include_str!("../../../../migrations/users/0011_owner_proven.sql") },
];

/// Open the users database with its schema current.
pub fn open_database() -> Result<storage::ServiceDb, storage::DbError> {
    storage::ServiceDb::open(DATABASE_LABEL, DATABASE_URL_VARIABLE, &MIGRATION_SET, &[])
}

/// The Spin variable that selects this database's backend: empty for the
/// embedded SQLite label, a `postgres://` URL for Postgres.
pub const DATABASE_URL_VARIABLE: &str = "users_database_url";

/// The same schema for Postgres, in `migrations/postgres/users/` (a test
/// checks this list against that folder too).
pub const PG_MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "users", sql: include_str!("../../../../migrations/postgres/users/0001_users.sql") },
    Migration {
        version: 2,
        name: "account_tokens",
        sql: include_str!("../../../../migrations/postgres/users/0002_account_tokens.sql"),
    },
    Migration { version: 3, name: "addresses", sql: include_str!("../../../../migrations/postgres/users/0003_addresses.sql") },
    Migration {
        version: 4,
        name: "account_deletion",
        sql: include_str!("../../../../migrations/postgres/users/0004_account_deletion.sql"),
    },
    Migration { version: 5, name: "sms_consent", sql: include_str!("../../../../migrations/postgres/users/0005_sms_consent.sql") },
    Migration { version: 6, name: "promotions", sql: include_str!("../../../../migrations/postgres/users/0006_promotions.sql") },
    Migration { version: 7, name: "event_traces", sql: include_str!("../../../../migrations/postgres/users/0007_event_traces.sql") },
    Migration { version: 8, name: "admin_rule_spent", sql: include_str!("../../../../migrations/postgres/users/0008_admin_rule_spent.sql") },
    Migration { version: 9, name: "retention", sql: include_str!("../../../../migrations/postgres/users/0009_retention.sql") },
    Migration { version: 10, name: "owner_proven", sql: include_str!("../../../../migrations/postgres/users/0010_owner_proven.sql") },
];

/// Both lists: [`storage::MigrationSet::for_dialect`] picks the one of the
/// configured backend.
pub const MIGRATION_SET: storage::MigrationSet = storage::MigrationSet { sqlite: MIGRATIONS, postgres: PG_MIGRATIONS };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/users");
        storage::migrations::check_against_directory(MIGRATIONS, std::path::Path::new(dir)).unwrap();
    }

    #[test]
    fn every_postgres_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/postgres/users");
        storage::migrations::check_against_directory(PG_MIGRATIONS, std::path::Path::new(dir)).unwrap();
        for m in PG_MIGRATIONS {
            storage::migrations::check_postgres_sql(m.sql).unwrap();
        }
    }
}
