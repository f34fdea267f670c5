//! Fault injection (SPEC §6): a connection killed mid-transaction, and a pool with no free
//! connection, each turn into a retryable 503 with nothing applied.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use keystone_tests::*;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_connection_killed_in_a_finalizing_transaction_applies_nothing_and_a_retry_applies_once(
    pool: PgPool,
) {
    // Target 2: completing both tasks of group A finalizes the order, which cancels the Axon
    // workstation's ready task and queues its recorder notification.
    let s = Scenario::new(&pool, 2, 2, 0).await;
    let (_, axon_batch) = s.add_axon_batch("AX-K", "axon-k", &[("ready", 1)]).await;
    let router = router(pool.clone());
    let before = snapshot(&pool).await;

    // Workstations are locked last, after the tasks, the batches, the order and the outbox
    // are written: holding the collector's workstation stops the request right there.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM workstations WHERE id = $1 FOR NO KEY UPDATE")
        .bind(s.seat.workstation_id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let request = {
        let (router, token, body) = (router.clone(), s.seat.token.clone(), s.group_a.body(2));
        tokio::spawn(async move {
            complete(
                &router,
                &token,
                s.batch_id,
                body,
                &[("idempotency-key", "phone-1")],
            )
            .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let victim: i32 = loop {
        let waiting: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE '%FROM workstations%FOR NO KEY UPDATE%'",
        )
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some(pid) = waiting {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the request never reached the workstation lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let finalized_inside: i64 = sqlx::query_scalar("SELECT count(*) FROM recorder_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(finalized_inside, 0, "uncommitted work is invisible");

    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(victim)
        .execute(&pool)
        .await
        .unwrap();
    let response = request.await.unwrap();
    holder.rollback().await.unwrap();

    response.assert_retryable("the database connection was lost; retry the request");
    assert_eq!(
        snapshot(&pool).await,
        before,
        "nothing of the request is visible"
    );

    let retried = complete(
        &router,
        &s.seat.token,
        s.batch_id,
        s.group_a.body(2),
        &[("idempotency-key", "phone-1")],
    )
    .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert_eq!(retried.body["order"]["status"], json!("completed"));
    let again = complete(
        &router,
        &s.seat.token,
        s.batch_id,
        s.group_a.body(2),
        &[("idempotency-key", "phone-1")],
    )
    .await;
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.text, retried.text);
    let notifications: i64 = sqlx::query_scalar("SELECT count(*) FROM recorder_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(notifications, 1, "finalized exactly once");
    assert_eq!(batch_status(&pool, axon_batch).await, "completed");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn no_free_connection_answers_503_within_the_acquire_timeout(
    _: PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .connect_with(connect.application_name(keystone_store::APPLICATION_NAME))
        .await
        .unwrap();
    let s = Scenario::new(&pool, 100, 3, 0).await;
    // The functions' handle on this one-connection pool itself.
    let router = router_with(keystone_store::Database::new(pool.clone()));
    let held = pool.acquire().await.unwrap();

    let started = Instant::now();
    let response = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;

    response.assert_retryable("no database connection is free; retry the request");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(held);
    let retried = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
}

/// An SQS that takes the request and never answers.
#[derive(Debug)]
struct HangingPublisher;

impl keystone_store::outbox::OutboxPublisher for HangingPublisher {
    fn publish_committed<'a>(
        &'a self,
        _outbox_ids: &'a [i64],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(std::future::pending())
    }
}

/// SPEC §9 time budgets: publishing after a commit has a deadline of its own, so a hanging SQS
/// never holds a committed request's answer past it (the relay sends the rows later).
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn publishing_after_commit_gives_up_at_its_deadline(pool: PgPool) {
    let deadline = Duration::from_millis(200);
    let state = state(pool)
        .with_outbox(std::sync::Arc::new(HangingPublisher))
        .with_publish_deadline(deadline);

    let started = Instant::now();
    let published =
        tokio::time::timeout(Duration::from_secs(5), state.publish_committed(&[1])).await;

    assert!(published.is_ok(), "publishing outlived its deadline");
    assert!(started.elapsed() >= deadline && started.elapsed() < deadline * 5);
}

/// Whatever value slips past the checks, a data exception of the database (SQLSTATE class 22:
/// here a NUL PostgreSQL cannot store) is the request's fault: 400, never 500.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_value_the_database_refuses_as_data_is_a_400(pool: PgPool) {
    let refused = sqlx::query("SELECT $1::text")
        .bind("a\u{0}b")
        .execute(&pool)
        .await
        .unwrap_err();
    let answer = keystone_http::ApiError::from(keystone_store::StoreError::from(refused));
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.body(),
        json!({"error": "a value in the request cannot be stored", "code": "unstorable_value"})
    );
}
