//! SPEC §6 limits, set per transaction so they survive a transaction-pooling proxy: a lock wait
//! or a statement past its limit answers 503 with `Retry-After`, applies nothing and releases
//! its locks; no limit outlives the transaction that set it.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use keystone_store::{Database, TransactionLimits};
use keystone_tests::*;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(30);

fn router_with_limits(pool: &PgPool, limits: TransactionLimits) -> axum::Router {
    router_with(Database::new(pool.clone(), limits))
}

/// Holds the order row locked, as a long request on the same order would, until dropped.
async fn hold_order_lock(
    pool: &PgPool,
    order_id: i64,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM orders WHERE id = $1 FOR UPDATE")
        .bind(order_id)
        .execute(&mut *holder)
        .await
        .unwrap();
    holder
}

/// A complete-tasks request under `limits` meets the order row locked by another transaction:
/// it answers 503 with `message` well before the test's patience runs out, applies nothing, and
/// leaves no lock behind (the same request succeeds once the holder is gone).
async fn assert_turned_away_while_the_order_is_locked(
    pool: &PgPool,
    limits: TransactionLimits,
    message: &str,
) {
    let s = Scenario::new(pool, 100, 3, 0).await;
    let router = router_with_limits(pool, limits);
    let before = snapshot(pool).await;
    let holder = hold_order_lock(pool, s.order_id).await;

    let started = Instant::now();
    let response = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;

    response.assert_retryable(message);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    holder.rollback().await.unwrap();
    assert_eq!(
        snapshot(pool).await,
        before,
        "nothing of the request was applied"
    );
    let retried = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(
        retried.status,
        StatusCode::OK,
        "its locks were released: {}",
        retried.text
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_lock_wait_past_its_limit_answers_503_and_applies_nothing(pool: PgPool) {
    assert_turned_away_while_the_order_is_locked(
        &pool,
        TransactionLimits {
            lock_timeout: SHORT,
            statement_timeout: LONG,
            idle_in_transaction_timeout: LONG,
        },
        "timed out waiting for a lock held by another request; retry the request",
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_statement_past_its_limit_answers_503_and_applies_nothing(pool: PgPool) {
    assert_turned_away_while_the_order_is_locked(
        &pool,
        TransactionLimits {
            lock_timeout: LONG,
            statement_timeout: SHORT,
            idle_in_transaction_timeout: LONG,
        },
        "the database took too long to answer; retry the request",
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_admin_request_is_bounded_too(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let router = router_with_limits(
        &pool,
        TransactionLimits {
            lock_timeout: SHORT,
            statement_timeout: LONG,
            idle_in_transaction_timeout: LONG,
        },
    );
    let holder = hold_order_lock(&pool, s.order_id).await;

    let response = send(
        &router,
        axum::http::Method::POST,
        &finalize_path(s.order_id),
        Some(&admin_token()),
        &[],
        "",
    )
    .await;

    response.assert_retryable(
        "timed out waiting for a lock held by another request; retry the request",
    );
    holder.rollback().await.unwrap();
    assert_eq!(order_status(&pool, s.order_id).await, "created");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_limits_hold_inside_the_transaction_and_end_with_it(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // One connection, so the session after the transaction is the one that ran it.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(connect)
        .await
        .unwrap();
    let db = Database::new(
        pool,
        TransactionLimits {
            lock_timeout: Duration::from_millis(1_234),
            statement_timeout: Duration::from_millis(5_678),
            idle_in_transaction_timeout: Duration::from_millis(9_012),
        },
    );
    const SETTINGS: &str = "SELECT current_setting('lock_timeout'), \
        current_setting('statement_timeout'), \
        current_setting('idle_in_transaction_session_timeout')";

    let mut tx = db.begin().await.unwrap();
    let inside: (String, String, String) =
        sqlx::query_as(SETTINGS).fetch_one(&mut *tx).await.unwrap();
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(
        inside,
        (
            "1234ms".to_owned(),
            "5678ms".to_owned(),
            "9012ms".to_owned()
        )
    );
    // The same session, after the transaction: back to the server's defaults, so a pooling
    // proxy hands the next client a clean connection.
    let mut conn = db.pool().acquire().await.unwrap();
    let same_backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let after: (String, String, String) = sqlx::query_as(SETTINGS)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(same_backend, backend, "the pool gave back the same session");
    assert_eq!(after, ("0".to_owned(), "0".to_owned(), "0".to_owned()));
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_idle_transaction_past_its_limit_is_ended_by_the_server(pool: PgPool) {
    let db = Database::new(
        pool.clone(),
        TransactionLimits {
            lock_timeout: LONG,
            statement_timeout: LONG,
            idle_in_transaction_timeout: SHORT,
        },
    );
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SELECT id FROM orders WHERE id = $1 FOR UPDATE")
        .bind(s.order_id)
        .execute(&mut *tx)
        .await
        .unwrap();

    tokio::time::sleep(SHORT * 3).await;

    // The stalled transaction is gone, and with it its lock: a request goes through.
    assert!(sqlx::query("SELECT 1").execute(&mut *tx).await.is_err());
    let response = complete(
        &router(pool.clone()),
        &s.seat.token,
        s.batch_id,
        s.group_a.body(1),
        &[],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}
