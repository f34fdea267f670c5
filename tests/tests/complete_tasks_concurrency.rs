//! SPEC §6 and §6.1 under concurrency: the lock order serializes requests on one order, the
//! order is finalized once, and idempotency keys apply a request once.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use keystone_store::locking::{BatchSelection, UnitOfWork};
use keystone_tests::*;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// A pool big enough for every concurrent request of a test to hold a connection at once.
async fn wide_pool(connect: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(24)
        .connect_with(connect)
        .await
        .unwrap()
}

fn tally(statuses: &[StatusCode]) -> BTreeMap<u16, usize> {
    let mut tally = BTreeMap::new();
    for status in statuses {
        *tally.entry(status.as_u16()).or_insert(0) += 1;
    }
    tally
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn twenty_concurrent_requests_for_ten_pending_tasks_complete_exactly_ten(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = wide_pool(connect).await;
    let s = Scenario::new(&pool, 1_000, 10, 5).await;
    let router = router(pool.clone());

    let requests = (0..20).map(|_| {
        let (router, token, body) = (router.clone(), s.seat.token.clone(), s.group_a.body(1));
        tokio::spawn(async move { complete(&router, &token, s.batch_id, body, &[]).await })
    });
    let mut responses = Vec::new();
    for request in requests {
        responses.push(request.await.unwrap());
    }

    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status).collect();
    assert_eq!(
        tally(&statuses),
        BTreeMap::from([(200, 10), (400, 10)]),
        "{responses:#?}"
    );
    for refused in responses
        .iter()
        .filter(|r| r.status == StatusCode::BAD_REQUEST)
    {
        assert_eq!(refused.body["pending_count"], json!(0), "{}", refused.text);
        assert_eq!(refused.body["requested"], json!(1));
    }
    let completed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(completed, 10);
    let mut seen: Vec<&str> = responses
        .iter()
        .filter_map(|r| r.body["tasks"][0]["id"].as_str())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 10, "every success completed a different task");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn concurrent_requests_that_would_each_complete_the_order_finalize_it_once(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = wide_pool(connect).await;
    for round in 0..5 {
        // Target 2: either group alone completes the order.
        let s = Scenario::new(&pool, 2, 2, 2).await;
        let axon = s
            .add_seat(&format!("AX{round}"), None, Some(&format!("axon-{round}")))
            .await;
        let axon_batch = s.add_batch(s.order_id, axon.workstation_id).await;
        s.add_tasks(axon_batch, s.group_a, 3, "ready").await;
        let router = router(pool.clone());

        let (a, b) = tokio::join!(
            complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]),
            complete(&router, &s.seat.token, s.batch_id, s.group_b.body(2), &[]),
        );

        let (winner, loser) = if a.status == StatusCode::OK {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(winner.status, StatusCode::OK, "{}", winner.text);
        assert_eq!(winner.body["order"]["status"], "completed");
        // The winner's finalization completed the shared batch, so the loser is refused.
        loser.assert_error(
            StatusCode::CONFLICT,
            "batch is completed; only pending or active batches accept task completions",
        );
        let rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM recorder_outbox WHERE order_id = $1")
                .bind(s.order_id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(rows, 3, "one set of notifications");
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn only_the_transaction_that_moved_the_order_gets_to_finalize_it(pool: PgPool) {
    let s = Scenario::new(&pool, 1, 1, 0).await;
    sqlx::query("UPDATE tasks SET status = 'completed' WHERE batch_id = $1")
        .bind(s.batch_id)
        .execute(&pool)
        .await
        .unwrap();

    let mut first = UnitOfWork::begin(&app_db(&pool))
        .await
        .unwrap()
        .lock_order(s.order_id)
        .await
        .unwrap()
        .unwrap()
        .lock_batches(BatchSelection {
            ids: vec![],
            all_open: true,
        })
        .await
        .unwrap();
    assert!(
        first
            .complete_order_by_decision()
            .await
            .unwrap()
            .completion
            .is_some()
    );
    first
        .settle_workstations()
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();

    let mut second = UnitOfWork::begin(&app_db(&pool))
        .await
        .unwrap()
        .lock_order(s.order_id)
        .await
        .unwrap()
        .unwrap()
        .lock_batches(BatchSelection {
            ids: vec![],
            all_open: true,
        })
        .await
        .unwrap();
    let again = second.complete_order_by_decision().await.unwrap();
    assert!(
        again.completion.is_none(),
        "a completed order is never completed twice"
    );
    assert_eq!(again.completed_count, 1);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_replay_returns_the_stored_response_and_changes_nothing(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 5, 0).await;
    let router = router(pool.clone());
    let key = [("idempotency-key", "phone-42:attempt-1")];

    let first = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let after_first = snapshot(&pool).await;

    let replay = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &key).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(
        replay
            .headers
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(replay.text, first.text, "byte-for-byte the stored body");
    assert_eq!(snapshot(&pool).await, after_first);
    let completed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(completed, 2);

    // Field order and defaults do not make a different request.
    let reordered =
        json!({"subscene_id": s.group_a.subscene_id, "sop_id": s.group_a.sop_id, "quantity": 2});
    let replay = complete(&router, &s.seat.token, s.batch_id, reordered, &key).await;
    assert_eq!(replay.text, first.text);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_same_key_with_a_different_request_gets_422(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 5, 3).await;
    let other_batch = s.add_batch(s.order_id, s.seat.workstation_id).await;
    s.add_tasks(other_batch, s.group_a, 3, "pending").await;
    let router = router(pool.clone());
    let key = [("idempotency-key", "k-1")];
    let first = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);

    let message = "idempotency key reused with a different request";
    for (batch, body) in [
        (s.batch_id, s.group_a.body(2)),
        (s.batch_id, s.group_b.body(1)),
        (other_batch, s.group_a.body(1)),
    ] {
        let request = complete_request(Some(&s.seat.token), batch, body.to_string(), &key);
        assert_refused(
            &pool,
            &router,
            request,
            StatusCode::UNPROCESSABLE_ENTITY,
            message,
        )
        .await;
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn keys_belong_to_one_collector(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 5, 0).await;
    let other = Scenario::new(&pool, 100, 5, 0).await;
    let router = router(pool.clone());
    let key = [("idempotency-key", "shared")];
    let mine = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &key).await;
    let theirs = complete(
        &router,
        &other.seat.token,
        other.batch_id,
        other.group_a.body(1),
        &key,
    )
    .await;
    assert_eq!(
        (mine.status, theirs.status),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        mine.text,
        theirs.text
    );
    assert!(theirs.headers.get("idempotent-replayed").is_none());
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_failed_request_stores_nothing_so_its_repeat_runs_as_new(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 1, 0).await;
    let router = router(pool.clone());
    let key = [("idempotency-key", "retry-me")];
    let request = complete_request(
        Some(&s.seat.token),
        s.batch_id,
        s.group_a.body(2).to_string(),
        &key,
    );
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::BAD_REQUEST,
        "quantity 2 exceeds the batch's 1 live tasks",
    )
    .await;

    s.add_tasks(s.batch_id, s.group_a, 1, "pending").await;
    let retry = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &key).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert!(retry.headers.get("idempotent-replayed").is_none());
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn ten_concurrent_requests_with_one_key_apply_once(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = wide_pool(connect).await;
    let s = Scenario::new(&pool, 100, 20, 0).await;
    let router = router(pool.clone());

    let requests = (0..10).map(|_| {
        let (router, token, body) = (router.clone(), s.seat.token.clone(), s.group_a.body(3));
        tokio::spawn(async move {
            complete(
                &router,
                &token,
                s.batch_id,
                body,
                &[("idempotency-key", "same-key")],
            )
            .await
        })
    });
    let mut responses = Vec::new();
    for request in requests {
        responses.push(request.await.unwrap());
    }

    assert!(
        responses.iter().all(|r| r.status == StatusCode::OK),
        "{responses:#?}"
    );
    let fresh = responses
        .iter()
        .filter(|r| r.headers.get("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one request applied");
    assert!(
        responses.iter().all(|r| r.text == responses[0].text),
        "every answer is the same body"
    );
    let completed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(completed, 3);
}

/// A transaction holding the row `lock` (a `… WHERE id = $1 FOR UPDATE`) locks until it is
/// rolled back.
async fn hold_row(
    pool: &PgPool,
    lock: &'static str,
    id: i64,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(lock)
        .bind(id)
        .execute(&mut *holder)
        .await
        .unwrap();
    holder
}

/// SPEC §6 and the security review: a collector cannot make a request lock rows it has no
/// business with. Naming another workstation's batch answers 403 without waiting for that
/// order's lock; a quantity beyond the batch's live tasks never widens the lock to every open
/// batch of the order.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_foreign_batch_or_a_huge_quantity_is_refused_at_once_while_the_order_is_locked_elsewhere(
    pool: PgPool,
) {
    // Target 10: a quantity of 10 or more could complete the order.
    let s = Scenario::new(&pool, 10, 3, 0).await;
    let stranger = s.add_seat("DC-X", None, None).await;
    let other_batch = s.add_batch(s.order_id, stranger.workstation_id).await;
    // A lock wait ends after a second, so a request that waits answers 503 instead of hanging.
    let limits = keystone_store::TransactionLimits {
        lock_timeout: Duration::from_secs(1),
        ..keystone_store::TransactionLimits::default()
    };
    let router = router_with(app_db_with_limits(&pool, limits).await);
    let before = snapshot(&pool).await;

    // Someone holds the order row: a foreign batch must not wait for it.
    let holder = hold_row(
        &pool,
        "SELECT id FROM orders WHERE id = $1 FOR UPDATE",
        s.order_id,
    )
    .await;
    let started = std::time::Instant::now();
    let answer = complete(
        &router,
        &stranger.token,
        s.batch_id,
        s.group_a.body(1_000_000),
        &[],
    )
    .await;
    answer.assert_error(
        StatusCode::FORBIDDEN,
        "batch is not assigned to current workstation",
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    holder.rollback().await.unwrap();

    // Someone holds another open batch of the order: a quantity beyond this batch's 3 live
    // tasks locks this batch only, and is refused for what it is.
    let holder = hold_row(
        &pool,
        "SELECT id FROM batches WHERE id = $1 FOR UPDATE",
        other_batch,
    )
    .await;
    let started = std::time::Instant::now();
    let answer = complete(
        &router,
        &s.seat.token,
        s.batch_id,
        s.group_a.body(1_000_000),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(answer.body["task_count"], 3);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    holder.rollback().await.unwrap();
    assert_eq!(snapshot(&pool).await, before);
}
