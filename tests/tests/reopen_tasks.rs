//! SPEC §5.10: a mistaken completion is undone — the most recently completed tasks of a group go
//! back to pending, the batch and order follow, a collector only within 15 minutes on their own
//! workstation, an admin always, never once the order is completed or cancelled.

use axum::http::{Method, StatusCode};
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn reopen(router: &axum::Router, token: &str, batch: i64, body: Value) -> TestResponse {
    reopen_with(router, token, batch, body, &[]).await
}

async fn reopen_with(
    router: &axum::Router,
    token: &str,
    batch: i64,
    body: Value,
    headers: &[(&str, &str)],
) -> TestResponse {
    send(
        router,
        Method::POST,
        &reopen_path(batch),
        Some(token),
        headers,
        body.to_string(),
    )
    .await
}

/// Ids and `completed_at` of a batch's completed tasks, most recent first.
async fn completed_tasks(pool: &PgPool, batch: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM tasks WHERE batch_id = $1 AND status = 'completed' \
         AND deleted_at IS NULL ORDER BY completed_at DESC, id DESC",
    )
    .bind(batch)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_collector_undoes_the_last_completions_of_a_group(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 10, 2).await;
    let router = router(pool.clone());
    // Two completions: the later one (5 tasks) is the mistake.
    let first = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let second = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(5), &[]).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let most_recent: Vec<String> = completed_tasks(&pool, s.batch_id).await[..3]
        .iter()
        .map(ToString::to_string)
        .collect();

    let response = reopen(&router, &s.seat.token, s.batch_id, s.group_a.body(3)).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let reopened: Vec<String> = response.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reopened, most_recent, "most recently completed first");
    assert!(
        response.body["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == json!("pending") && t["task_id"].as_str().is_some())
    );
    assert_eq!(response.body["reopened_count"], json!(3));
    assert_eq!(
        response.body["batch"],
        json!({"id": s.batch_id.to_string(), "status": "active", "completed_count": 4, "task_count": 12})
    );
    assert_eq!(
        response.body["order"],
        json!({"id": s.order_id.to_string(), "status": "in_progress", "completed_count": 4, "target_count": 100})
    );
    let cleared: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE id::text = ANY($1) AND status = 'pending' \
         AND started_at IS NULL AND completed_at IS NULL",
    )
    .bind(&reopened)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(cleared, 3);
    assert_eq!(
        live_counts(&pool, s.batch_id).await,
        [("completed".to_owned(), 4), ("pending".to_owned(), 8)]
    );
    // The reopened tasks are pending like any other and can be completed again.
    let again = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(6), &[]).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn reopening_a_completed_batch_makes_it_active_and_an_emptied_order_created(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let router = router(pool.clone());
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(3), &[]).await;
    assert_eq!(
        done.body["batch"]["status"],
        json!("completed"),
        "{}",
        done.text
    );
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "inactive"
    );

    let response = reopen(&router, &s.seat.token, s.batch_id, s.group_a.body(1)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["batch"]["status"], json!("active"));
    assert_eq!(batch_status(&pool, s.batch_id).await, "active");
    let ended: bool = sqlx::query_scalar("SELECT ended_at IS NULL FROM batches WHERE id = $1")
        .bind(s.batch_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ended, "a reopened batch has not ended");
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "active",
        "the workstation follows its batch"
    );

    let rest = reopen(&router, &admin_token(), s.batch_id, s.group_a.body(2)).await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    assert_eq!(rest.body["order"]["status"], json!("created"));
    assert_eq!(rest.body["order"]["completed_count"], json!(0));
    assert_eq!(order_status(&pool, s.order_id).await, "created");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_collector_has_fifteen_minutes_and_only_their_own_batches(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 4, 0).await;
    let router = router(pool.clone());
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(4), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    // Two of them were completed 20 minutes ago, two 10 minutes ago.
    sqlx::query(
        "UPDATE tasks SET completed_at = now() - CASE WHEN id IN \
             (SELECT id FROM tasks WHERE batch_id = $1 ORDER BY id LIMIT 2) \
         THEN interval '20 minutes' ELSE interval '10 minutes' END WHERE batch_id = $1",
    )
    .bind(s.batch_id)
    .execute(&pool)
    .await
    .unwrap();

    let other = s
        .add_seat(
            "DC-OTHER",
            Some(json!({"requires_axon": false})),
            Some("ext-o"),
        )
        .await;
    assert_refused(
        &pool,
        &router,
        reopen_request(&other.token, s.batch_id, s.group_a.body(1)),
        StatusCode::FORBIDDEN,
        "batch is not assigned to current workstation",
    )
    .await;
    let too_many = assert_refused(
        &pool,
        &router,
        reopen_request(&s.seat.token, s.batch_id, s.group_a.body(3)),
        StatusCode::BAD_REQUEST,
        "task group has 2 reopenable tasks; 3 requested",
    )
    .await;
    assert_eq!(too_many.body["reopenable_count"], json!(2));
    assert_eq!(too_many.body["requested"], json!(3));
    let within = reopen(&router, &s.seat.token, s.batch_id, s.group_a.body(2)).await;
    assert_eq!(within.status, StatusCode::OK, "{}", within.text);
    // The admin may reopen the older ones.
    let admin = reopen(&router, &admin_token(), s.batch_id, s.group_a.body(2)).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text);
    assert_eq!(
        live_counts(&pool, s.batch_id).await,
        [("pending".to_owned(), 4)]
    );
}

fn reopen_request(token: &str, batch: i64, body: Value) -> axum::http::Request<axum::body::Body> {
    post_request(&reopen_path(batch), Some(token), body.to_string())
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_error_row_is_answered_and_changes_nothing(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 4, 0).await;
    let router = router(pool.clone());
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let admin = admin_token();
    let body = s.group_a.body(1);

    assert_refused(
        &pool,
        &router,
        post_request(&reopen_path(s.batch_id), None, body.to_string()),
        StatusCode::UNAUTHORIZED,
        "authentication required",
    )
    .await;
    let stranger = token_for(keystone_auth::Principal::Unrecognized {
        role: "viewer".to_owned(),
    });
    assert_refused(
        &pool,
        &router,
        reopen_request(&stranger, s.batch_id, body.clone()),
        StatusCode::FORBIDDEN,
        "unsupported role",
    )
    .await;
    assert_refused(
        &pool,
        &router,
        post_request(
            "/api/v1/batches/0/reopen-tasks",
            Some(&admin),
            body.to_string(),
        ),
        StatusCode::BAD_REQUEST,
        "invalid batch id",
    )
    .await;
    assert_refused(
        &pool,
        &router,
        reopen_request(&admin, s.batch_id, json!({"quantity": null})),
        StatusCode::BAD_REQUEST,
        "invalid request body",
    )
    .await;
    assert_refused(
        &pool,
        &router,
        reopen_request(&admin, s.batch_id, s.group_a.body(0)),
        StatusCode::BAD_REQUEST,
        "quantity must be >= 1",
    )
    .await;
    assert_refused(
        &pool,
        &router,
        reopen_request(&admin, s.batch_id, json!({"quantity": 1})),
        StatusCode::BAD_REQUEST,
        "invalid task group",
    )
    .await;
    assert_refused(
        &pool,
        &router,
        reopen_request(&admin, 999_999, body.clone()),
        StatusCode::NOT_FOUND,
        "batch not found",
    )
    .await;
    assert_refused(
        &pool,
        &router,
        reopen_request(&admin, s.batch_id, s.group_b.body(1)),
        StatusCode::NOT_FOUND,
        "task group not found in batch",
    )
    .await;
    assert_refused(
        &pool,
        &router,
        reopen_request(&admin, s.batch_id, s.group_a.body(i64::MAX)),
        StatusCode::BAD_REQUEST,
        &format!("task group has 2 reopenable tasks; {} requested", i64::MAX),
    )
    .await;
    let unseated = s.add_seat("DC-LOOSE", None, None).await;
    sqlx::query("UPDATE workstations SET deleted_at = now() WHERE id = $1")
        .bind(unseated.workstation_id)
        .execute(&pool)
        .await
        .unwrap();
    assert_refused(
        &pool,
        &router,
        reopen_request(&unseated.token, s.batch_id, body.clone()),
        StatusCode::NOT_FOUND,
        "workstation not assigned",
    )
    .await;

    // A task with an episode was recorded: it stays completed.
    sqlx::query("UPDATE tasks SET episode_id = 7 WHERE batch_id = $1 AND status = 'completed'")
        .bind(s.batch_id)
        .execute(&pool)
        .await
        .unwrap();
    assert_refused(
        &pool,
        &router,
        reopen_request(&admin, s.batch_id, body.clone()),
        StatusCode::BAD_REQUEST,
        "task group has 0 reopenable tasks; 1 requested",
    )
    .await;
    sqlx::query("UPDATE tasks SET episode_id = NULL WHERE batch_id = $1")
        .bind(s.batch_id)
        .execute(&pool)
        .await
        .unwrap();

    for status in ["cancelled", "recalled"] {
        set_batch_status(&pool, s.batch_id, status).await;
        let refused = assert_refused(
            &pool,
            &router,
            reopen_request(&admin, s.batch_id, body.clone()),
            StatusCode::CONFLICT,
            &format!("batch is {status}; its tasks cannot be reopened"),
        )
        .await;
        assert_eq!(refused.body["current_status"], json!(status));
    }
    set_batch_status(&pool, s.batch_id, "active").await;
    for status in ["completed", "cancelled"] {
        set_order_status(&pool, s.order_id, status).await;
        let refused = assert_refused(
            &pool,
            &router,
            reopen_request(&s.seat.token, s.batch_id, body.clone()),
            StatusCode::CONFLICT,
            &format!("order is {status}; its completed tasks cannot be reopened"),
        )
        .await;
        assert_eq!(refused.body["order_status"], json!(status));
    }
}

/// A completion that finalized its order cancelled the order's other tasks and told devices:
/// it cannot be undone through this endpoint.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_completion_that_finalized_its_order_cannot_be_reopened(pool: PgPool) {
    let s = Scenario::new(&pool, 2, 4, 0).await;
    let router = router(pool.clone());
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]).await;
    assert_eq!(
        done.body["order"]["status"],
        json!("completed"),
        "{}",
        done.text
    );
    assert_refused(
        &pool,
        &router,
        reopen_request(&s.seat.token, s.batch_id, s.group_a.body(1)),
        StatusCode::CONFLICT,
        "order is completed; its completed tasks cannot be reopened",
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn idempotency_keys_replay_for_collectors_and_admins_alike(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 6, 0).await;
    let router = router(pool.clone());
    let done = complete(
        &router,
        &s.seat.token,
        s.batch_id,
        s.group_a.body(6),
        &[("idempotency-key", "k-1")],
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);

    // The key of the completion cannot name its undo.
    reopen_with(
        &router,
        &s.seat.token,
        s.batch_id,
        s.group_a.body(6),
        &[("idempotency-key", "k-1")],
    )
    .await
    .assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency key reused with a different request",
    );

    for (token, key) in [(s.seat.token.clone(), "undo-1"), (admin_token(), "undo-1")] {
        let first = reopen_with(
            &router,
            &token,
            s.batch_id,
            s.group_a.body(1),
            &[("idempotency-key", key)],
        )
        .await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        assert!(first.headers.get("idempotent-replayed").is_none());
        let before = snapshot(&pool).await;
        let replay = reopen_with(
            &router,
            &token,
            s.batch_id,
            s.group_a.body(1),
            &[("idempotency-key", key)],
        )
        .await;
        assert_eq!(replay.status, StatusCode::OK, "{}", replay.text);
        assert_eq!(replay.text, first.text);
        assert_eq!(
            replay
                .headers
                .get("idempotent-replayed")
                .and_then(|v| v.to_str().ok()),
            Some("true")
        );
        assert_eq!(snapshot(&pool).await, before, "a replay changes nothing");
        reopen_with(
            &router,
            &token,
            s.batch_id,
            s.group_a.body(2),
            &[("idempotency-key", key)],
        )
        .await
        .assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency key reused with a different request",
        );
    }
    assert_eq!(
        live_counts(&pool, s.batch_id).await,
        [("completed".to_owned(), 4), ("pending".to_owned(), 2)],
        "the collector's and the admin's keys are separate: each reopened once"
    );
    reopen_with(
        &router,
        &admin_token(),
        s.batch_id,
        s.group_a.body(1),
        &[("idempotency-key", "")],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid idempotency key");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn reopening_runs_the_same_statements_whatever_the_quantity(pool: PgPool) {
    let s = Scenario::new(&pool, 1_000, 400, 0).await;
    let router = router(pool.clone());
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(400), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    // The first reopen also moves the completed batch (and its workstation): measure after it.
    let warm = reopen(&router, &s.seat.token, s.batch_id, s.group_a.body(1)).await;
    assert_eq!(
        warm.body["batch"]["status"],
        json!("active"),
        "{}",
        warm.text
    );
    let mut counts = Vec::new();
    for quantity in [1, 200] {
        let (statements, response) = statements_run_by(
            &pool,
            reopen(&router, &s.seat.token, s.batch_id, s.group_a.body(quantity)),
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        counts.push(statements);
    }
    assert_eq!(counts[0], counts[1], "{counts:?}");
}

/// Reopening and completing the same group at once: the order lock serializes them, both
/// succeed, and the figures add up.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_reopen_racing_a_completion_serializes(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 20, 0).await;
    let router = router(pool.clone());
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(10), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let mut handles = Vec::new();
    for i in 0..8 {
        let (router, token, body) = (router.clone(), s.seat.token.clone(), s.group_a.body(1));
        handles.push(tokio::spawn(async move {
            if i % 2 == 0 {
                complete(&router, &token, s.batch_id, body, &[]).await
            } else {
                reopen(&router, &token, s.batch_id, body).await
            }
        }));
    }
    for handle in handles {
        let response = handle.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    assert_eq!(
        live_counts(&pool, s.batch_id).await,
        [("completed".to_owned(), 10), ("pending".to_owned(), 10)]
    );
}
