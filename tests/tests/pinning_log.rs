//! The pinning check reads what it claims to (SPEC §6, §9): the test cluster's statement log
//! records what a session sends, under its application name, directly and through PgBouncer,
//! so a `set_config` slipped into the application would fail the test command.

use std::time::Duration;

use keystone_tests::pinning;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

#[track_caller]
fn statement_log_path() -> String {
    std::env::var("KEYSTONE_PG_LOG")
        .expect("KEYSTONE_PG_LOG is unset: run the tests through tests/run.sh")
}

/// What the statement log holds past `from` (its length when the test began: the rest of the
/// suite's statements are not this test's business).
fn statement_log_since(from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(statement_log_path()).expect("the statement log opens");
    file.seek(SeekFrom::Start(from)).unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    // The first line may be cut: scanning starts at the next entry anyway.
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sends, as `application`, the statement that began every transaction before the limits
/// became role defaults, then waits for it to reach the log.
async fn send_a_pinning_statement(options: PgConnectOptions, application: &str) -> pinning::Scan {
    let from = std::fs::metadata(statement_log_path())
        .expect("the statement log exists")
        .len();
    let mut conn = PgConnection::connect_with(&options.application_name(application))
        .await
        .unwrap();
    sqlx::raw_sql(
        "BEGIN; SELECT set_config('lock_timeout', '5000', true), \
         set_config('statement_timeout', '15000', true); COMMIT",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    for _ in 0..50 {
        let scan = pinning::scan(&statement_log_since(from), application);
        if !scan.offences.is_empty() {
            return scan;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pinning::scan(&statement_log_since(from), application)
}

fn unique(name: &str) -> String {
    format!("keystone-probe-{name}-{}", rand::random::<u32>())
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_set_config_sent_directly_is_found_in_the_statement_log(pool: PgPool) {
    let application = unique("direct");
    let scan = send_a_pinning_statement((*pool.connect_options()).clone(), &application).await;
    assert_eq!(scan.offences.len(), 1, "{scan:?}");
    assert_eq!(scan.offences[0].kind, "set_config");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_set_config_sent_through_the_pooling_proxy_is_found_in_the_statement_log(pool: PgPool) {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let base = std::env::var("KEYSTONE_PGBOUNCER_URL")
        .expect("KEYSTONE_PGBOUNCER_URL is unset: run the tests through tests/run.sh");
    let options: PgConnectOptions = format!("{base}/{database}?statement-cache-capacity=0")
        .parse()
        .unwrap();
    let application = unique("proxy");
    let scan = send_a_pinning_statement(options, &application).await;
    assert_eq!(scan.offences.len(), 1, "{scan:?}");
    assert_eq!(scan.offences[0].kind, "set_config");
    // Let the proxy's server connection to this test's database go, so it can be dropped.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&pool)
    .await
    .unwrap();
}
