//! The notifications database's schema, embedded from `migrations/notifications/`.

use storage::migrations::Migration;

/// The Spin SQLite label of the notifications database.
pub const DATABASE_LABEL: &str = "notifications";

pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "deliveries", sql: include_str!("../../../../migrations/notifications/0001_deliveries.sql") },
    Migration { version: 2, name: "sms_channel", sql: include_str!("../../../../migrations/notifications/0002_sms_channel.sql") },
    Migration { version: 3, name: "promotions", sql: include_str!("../../../../migrations/notifications/0003_promotions.sql") },
    Migration { version: 4, name: "metrics", sql: include_str!("../../../../migrations/notifications/0004_metrics.sql") },
    Migration {
        version: 5,
        name: "delivery_traces",
        sql: include_str!("../../../../migrations/notifications/0005_delivery_traces.sql"),
    },
    Migration {
        version: 6,
        name: "delivery_accounts",
        sql: include_str!("../../../../migrations/notifications/0006_delivery_accounts.sql"),
    },
    Migration {
        version: 7,
        name: "erased_accounts",
        sql: include_str!("../../../../migrations/notifications/0007_erased_accounts.sql"),
    },
    Migration {
        version: 8,
        name: "promotion_lane",
        sql: include_str!("../../../../migrations/notifications/0008_promotion_lane.sql"),
    },
    Migration {
        version: 9,
        name: "promotion_batches",
        sql: include_str!("../../../../migrations/notifications/0009_promotion_batches.sql"),
    },    Migration {
        version: 10,
        name: "promotion_fanouts",
        sql: include_str!("../../../../migrations/notifications/0010_promotion_fanouts.sql"),
    },
];

/// Open the notifications database with its schema current.
pub fn open_database() -> Result<storage::ServiceDb, storage::DbError> {
    storage::ServiceDb::open(DATABASE_LABEL, DATABASE_URL_VARIABLE, &MIGRATION_SET, &[])
}

/// The Spin variable that selects this database's backend: empty for the
/// embedded SQLite label, a `postgres://` URL for Postgres.
pub const DATABASE_URL_VARIABLE: &str = "notifications_database_url";

/// The same schema for Postgres, in `migrations/postgres/notifications/` (a test
/// checks this list against that folder too).
pub const PG_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "notifications",
        sql: include_str!("../../../../migrations/postgres/notifications/0001_notifications.sql"),
    },
    Migration {
        version: 2,
        name: "sms_channel",
        sql: include_str!("../../../../migrations/postgres/notifications/0002_sms_channel.sql"),
    },
    Migration {
        version: 3,
        name: "promotions",
        sql: include_str!("../../../../migrations/postgres/notifications/0003_promotions.sql"),
    },
    Migration {
        version: 4,
        name: "metrics",
        sql: include_str!("../../../../migrations/postgres/notifications/0004_metrics.sql"),
    },
    Migration {
        version: 5,
        name: "delivery_traces",
        sql: include_str!("../../../../migrations/postgres/notifications/0005_delivery_traces.sql"),
    },
    Migration {
        version: 6,
        name: "delivery_accounts",
        sql: include_str!("../../../../migrations/postgres/notifications/0006_delivery_accounts.sql"),
    },
    Migration {
        version: 7,
        name: "erased_accounts",
        sql: include_str!("../../../../migrations/postgres/notifications/0007_erased_accounts.sql"),
    },
    Migration {
        version: 8,
        name: "promotion_lane",
        sql: include_str!("../../../../migrations/postgres/notifications/0008_promotion_lane.sql"),
    },
    Migration {
        version: 9,
        name: "promotion_batches",
        sql: include_str!("../../../../migrations/postgres/notifications/0009_promotion_batches.sql"),
    },    Migration {
        version: 10,
        name: "promotion_fanouts",
        sql: include_str!("../../../../migrations/postgres/notifications/0010_promotion_fanouts.sql"),
    },
];

/// Both lists: [`storage::MigrationSet::for_dialect`] picks the one of the
/// configured backend.
pub const MIGRATION_SET: storage::MigrationSet = storage::MigrationSet { sqlite: MIGRATIONS, postgres: PG_MIGRATIONS };

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/notifications");
        storage::migrations::check_against_directory(super::MIGRATIONS, std::path::Path::new(dir)).unwrap();
    }

    #[test]
    fn deliveries_made_before_they_named_their_account_are_kept_for_none() {
        use storage::Db;
        let db = storage::native::MemDb::new();
        let before = &super::MIGRATIONS[..5]; // up to version 5
        storage::migrations::migrate(&db, before).unwrap();
        db.execute(
            "INSERT INTO deliveries (source, source_id, channel, event_type, idempotency_key, recipient, subject, html, text, status, next_attempt_at, created_at, updated_at) \
             VALUES ('orders', 7, 'sms', 'order.shipped', 'sms/order.shipped/o-1', '+442079460958', 'SMS: Order shipped', '', 'Shipped.', 'sent', 0, 't', 't')",
            &[],
        )
        .unwrap();
        storage::migrations::migrate(&db, super::MIGRATIONS).unwrap();
        let rows = db.query("SELECT source_id, recipient, text, status, user_id FROM deliveries", &[]).unwrap();
        let r = rows.first().unwrap();
        assert_eq!((r.int("source_id").unwrap(), r.text("recipient").unwrap().as_str()), (7, "+442079460958"));
        assert_eq!((r.text("text").unwrap().as_str(), r.text("status").unwrap().as_str()), ("Shipped.", "sent"));
        assert_eq!(r.opt_text("user_id").unwrap(), None);
    }

    #[test]
    fn every_postgres_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../migrations/postgres/notifications");
        storage::migrations::check_against_directory(super::PG_MIGRATIONS, std::path::Path::new(dir)).unwrap();
        for m in super::PG_MIGRATIONS {
            storage::migrations::check_postgres_sql(m.sql).unwrap();
        }
    }
}
