//! Round trips to the database per request, counted on the wire (issue 19: through RDS Proxy or
//! PgBouncer every one pays the hop). The handles are built as the functions build theirs.
//! Through PgBouncer, with statements unnamed, `pooling_proxy.rs` counts them.

use std::time::Duration;

use axum::http::StatusCode;
use keystone_store::Database;
use keystone_store::config::DbConfig;
use keystone_tests::round_trips::{RoundTripCounter, Upstream, turns_of_completion};
use keystone_tests::*;
use sqlx::PgPool;

/// The functions' handle on this test's database, through `relay` when given.
async fn function_database(pool: &PgPool, relay: Option<&RoundTripCounter>) -> Database {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let direct = std::env::var("DATABASE_URL").unwrap();
    let url = match relay {
        Some(relay) => format!("postgres://postgres@{}/{database}", relay.addr()),
        None => {
            let mut url = reqwest::Url::parse(&direct).unwrap();
            url.set_path(&format!("/{database}"));
            url.to_string()
        }
    };
    DbConfig::from_lookup(&|name: &str| match name {
        "DATABASE_URL" => Some(url.clone()),
        "DB_MAX_CONNECTIONS" => Some("2".to_owned()),
        _ => None,
    })
    .unwrap()
    .lazy_database()
    .unwrap()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_completion_is_four_round_trips_and_one_after_the_answer_whatever_the_quantity(
    pool: PgPool,
) {
    let s = Scenario::new(&pool, 10_000, 500, 0).await;
    let upstream = Upstream::of_url(&std::env::var("DATABASE_URL").unwrap());
    let relay = RoundTripCounter::start(upstream).await;
    let router = router_with(function_database(&pool, Some(&relay)).await);
    // The first completions connect and prepare each statement once (named, cached).
    for _ in 0..3 {
        turns_of_completion(&relay, &router, &s, 1).await;
    }
    for quantity in [1, 40, 1] {
        // BEGIN; the collector's seat with the order and batch locks; the completion; COMMIT;
        // and the pool's test of the returned connection. No test before the connection is
        // used: BEGIN is that test (`idle_connections_the_server_ended_do_not_fail_a_request`).
        assert_eq!(
            turns_of_completion(&relay, &router, &s, quantity).await,
            5,
            "round trips of a completion of {quantity}"
        );
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn idle_connections_the_server_ended_do_not_fail_a_request(pool: PgPool) {
    let s = Scenario::new(&pool, 10_000, 50, 0).await;
    let db = function_database(&pool, None).await;
    let router = router_with(db.clone());
    // Both connections the pool may hold are open and idle...
    let held = (
        db.pool().acquire().await.unwrap(),
        db.pool().acquire().await.unwrap(),
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(db.pool().num_idle(), 2);
    // ...when the server ends them, as a failover or a proxy's idle timeout would.
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'keystone') t",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ended, 2);
    tokio::time::sleep(Duration::from_millis(200)).await;

    for _ in 0..2 {
        let response = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
}
