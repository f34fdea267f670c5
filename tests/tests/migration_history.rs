//! SPEC §3: migrations never edit an applied file. The checksums of the released migrations
//! are recorded in `tests/released-migrations.txt`; a database whose history disagrees with
//! the files is refused with the migration named.

use std::collections::BTreeMap;
use std::path::Path;

use keystone_store::{Database, MIGRATOR, apply_migrations};
use sqlx::PgPool;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// version → (checksum, file name), as recorded.
fn released() -> BTreeMap<i64, (String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("released-migrations.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            let version = parts.next().unwrap().parse().unwrap();
            let checksum = parts.next().unwrap().to_owned();
            let file = parts.next().unwrap().to_owned();
            (version, (checksum, file))
        })
        .collect()
}

#[test]
fn no_released_migration_has_changed_and_every_migration_is_recorded() {
    let recorded = released();
    for migration in MIGRATOR.iter() {
        let checksum = hex(&migration.checksum);
        match recorded.get(&migration.version) {
            Some((expected, file)) => assert_eq!(
                &checksum, expected,
                "migrations/{file} has changed since it was released: restore it and put the \
                 change in a new migration"
            ),
            None => panic!(
                "migration {} ({}) is not recorded in tests/released-migrations.txt; add\n{} {} <file>",
                migration.version, migration.description, migration.version, checksum
            ),
        }
    }
    for (version, (_, file)) in &recorded {
        assert!(
            MIGRATOR.iter().any(|m| m.version == *version),
            "released migration {file} is gone from migrations/"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn a_database_that_applied_other_contents_is_refused_naming_the_migration(pool: PgPool) {
    let db = Database::new(pool.clone());
    apply_migrations(&db, None).await.unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 20261123000002")
        .execute(&pool)
        .await
        .unwrap();
    let error = apply_migrations(&db, None).await.unwrap_err().to_string();
    assert!(
        error.contains("migration 20261123000002 (outbox and idempotency)")
            && error.contains("other contents"),
        "{error}"
    );
}

/// 20261124000006 was edited three times after some databases had applied it; a later
/// migration brings each earlier form to the released one, so those databases migrate.
#[sqlx::test(migrations = false)]
async fn a_database_with_an_earlier_form_of_the_counters_migration_still_migrates(pool: PgPool) {
    let db = Database::new(pool.clone());
    apply_migrations(&db, None).await.unwrap();
    // The first released form, in SPEC §3's words an applied file that was later edited.
    sqlx::query(
        "UPDATE _sqlx_migrations SET checksum = decode($1, 'hex') WHERE version = 20261124000006",
    )
    .bind("960a542dd15d13ea8e32eab703dc00ffb69f3b3be9cb67e542ffde067ec4b1d619bb1e3e5aa800fa100dcbc5c329a88a")
    .execute(&pool)
    .await
    .unwrap();
    apply_migrations(&db, None).await.unwrap();
    let stamped: Vec<u8> =
        sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 20261124000006")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(hex(&stamped), released()[&20_261_124_000_006].0);
}
