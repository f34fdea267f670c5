//! SPEC §6 limits, the application role's defaults in its database so no request sends them
//! (a `SET` or `set_config` would pin an RDS Proxy session): a lock wait or a statement past its
//! limit answers 503 with `Retry-After`, applies nothing and releases its locks.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use keystone_store::TransactionLimits;
use keystone_tests::*;
use sqlx::PgPool;

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(30);

async fn router_with_limits(pool: &PgPool, limits: TransactionLimits) -> axum::Router {
    router_with(app_db_with_limits(pool, limits).await)
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
    let router = router_with_limits(pool, limits).await;
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
    )
    .await;
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

const SETTINGS: &str = "SELECT current_setting('lock_timeout'), \
    current_setting('statement_timeout'), \
    current_setting('idle_in_transaction_session_timeout')";

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_session_of_the_role_starts_with_its_limits(pool: PgPool) {
    let db = app_db_with_limits(
        &pool,
        TransactionLimits {
            lock_timeout: Duration::from_millis(1_234),
            statement_timeout: Duration::from_millis(5_678),
            idle_in_transaction_timeout: Duration::from_millis(9_012),
        },
    )
    .await;

    // A transaction as a request begins it: nothing but BEGIN was sent, the limits hold.
    let mut tx = db.begin().await.unwrap();
    let inside: (String, String, String) =
        sqlx::query_as(SETTINGS).fetch_one(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();

    assert_eq!(
        inside,
        (
            "1234ms".to_owned(),
            "5678ms".to_owned(),
            "9012ms".to_owned()
        )
    );
}

/// What the migrations leave for the application role, before db-migrate writes its
/// configured values: the defaults of docs/deploy.md's time budget, in this database only.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_migrations_give_the_application_role_the_default_limits(pool: PgPool) {
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(s.setconfig) FROM pg_db_role_setting s \
         JOIN pg_roles r ON r.oid = s.setrole \
         JOIN pg_database d ON d.oid = s.setdatabase \
         WHERE r.rolname = 'keystone_app' AND d.datname = current_database() ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let defaults = TransactionLimits::default();
    let ms = |d: Duration| d.as_millis();
    assert_eq!(
        settings,
        vec![
            format!(
                "idle_in_transaction_session_timeout={}ms",
                ms(defaults.idle_in_transaction_timeout)
            ),
            format!("lock_timeout={}ms", ms(defaults.lock_timeout)),
            format!("statement_timeout={}ms", ms(defaults.statement_timeout)),
        ]
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_idle_transaction_past_its_limit_is_ended_by_the_server(pool: PgPool) {
    let db = app_db_with_limits(
        &pool,
        TransactionLimits {
            lock_timeout: LONG,
            statement_timeout: LONG,
            idle_in_transaction_timeout: SHORT,
        },
    )
    .await;
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
