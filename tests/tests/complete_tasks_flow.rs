//! SPEC §5.1 effects and §5.4 finalization through the complete-tasks endpoint.

use axum::http::StatusCode;
use keystone_tests::*;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn completes_the_earliest_pending_tasks_by_assigned_at_then_id(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 0, 2).await;
    let t = s.add_tasks(s.batch_id, s.group_a, 6, "pending").await;
    let early = "2026-01-01T00:00:00Z";
    sqlx::query(
        "UPDATE tasks SET assigned_at = $2::timestamptz + CASE id \
             WHEN $3 THEN interval '5 min' WHEN $4 THEN interval '1 min' WHEN $5 THEN interval '1 min' \
             WHEN $6 THEN interval '0 min' WHEN $7 THEN interval '3 min' ELSE interval '9 min' END, \
             status = CASE WHEN id = $6 THEN 'ready' ELSE status END, \
             started_at = CASE WHEN id = $7 THEN '2025-12-31T00:00:00Z'::timestamptz END \
         WHERE id = ANY($1)",
    )
    .bind(&t).bind(early).bind(t[0]).bind(t[1]).bind(t[2]).bind(t[3]).bind(t[4])
    .execute(&pool).await.unwrap();
    let tasks_before: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());

    let response = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(3), &[]).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    // t[3] is earliest but ready, not pending; t[1] and t[2] tie and go by id.
    let expected = [t[1], t[2], t[4]];
    let ids: Vec<String> = expected.iter().map(i64::to_string).collect();
    let got: Vec<&str> = response.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids);
    let rows: Vec<(i64, String, Option<String>, bool, bool)> = sqlx::query_as(
        "SELECT id, status, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), \
                completed_at IS NOT NULL, COALESCE(started_at = completed_at, false) \
         FROM tasks WHERE id = ANY($1) ORDER BY id",
    )
    .bind(&t)
    .fetch_all(&pool)
    .await
    .unwrap();
    for (id, status, started, has_completed_at, started_now) in rows {
        if expected.contains(&id) {
            assert_eq!(status, "completed");
            assert!(has_completed_at);
            // An earlier started_at is kept; otherwise it is the completion time.
            if id == t[4] {
                assert_eq!(started.as_deref(), Some("2025-12-31"));
            } else {
                assert!(started_now, "task {id} started_at = completed_at");
            }
        } else {
            assert_ne!(status, "completed", "task {id} must be untouched");
            assert!(!has_completed_at);
        }
    }
    for task in response.body["tasks"].as_array().unwrap() {
        assert_eq!(task["status"], "completed");
        assert!(task["task_id"].as_str().unwrap().starts_with("task_"));
        let completed_at = task["completed_at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(completed_at).is_ok()
                && completed_at.ends_with('Z')
        );
    }
    let tasks_after: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        tasks_after, tasks_before,
        "completing never creates task rows"
    );
    assert_eq!(response.body["created_count"], json!(0));
    assert_eq!(response.body["requested_count"], json!(3));
    assert_eq!(response.body["completed_count"], json!(3));
    assert_eq!(
        response.body["group"],
        json!({"sop_id": s.group_a.sop_id, "subscene_id": s.group_a.subscene_id, "scene_name": "厨房", "subscene_name": "台面"})
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn batch_order_and_workstation_move_through_their_lifecycles(pool: PgPool) {
    let s = Scenario::new(&pool, 4, 2, 2).await;
    let router = router(pool.clone());
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "inactive"
    );

    let first = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(
        first.body["batch"],
        json!({"id": s.batch_id.to_string(), "status": "active", "completed_count": 1, "task_count": 4})
    );
    assert_eq!(
        first.body["order"],
        json!({"id": s.order_id.to_string(), "status": "in_progress", "completed_count": 1, "target_count": 4})
    );
    assert_eq!(batch_status(&pool, s.batch_id).await, "active");
    assert_eq!(order_status(&pool, s.order_id).await, "in_progress");
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "active"
    );
    let (started, ended): (bool, bool) = sqlx::query_as(
        "SELECT started_at IS NOT NULL, ended_at IS NOT NULL FROM batches WHERE id = $1",
    )
    .bind(s.batch_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(started && !ended);

    let second = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(second.body["batch"]["status"], "active", "{}", second.text);
    let last = complete(&router, &s.seat.token, s.batch_id, s.group_b.body(2), &[]).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.text);
    assert_eq!(
        last.body["batch"],
        json!({"id": s.batch_id.to_string(), "status": "completed", "completed_count": 4, "task_count": 4})
    );
    assert_eq!(
        last.body["order"],
        json!({"id": s.order_id.to_string(), "status": "completed", "completed_count": 4, "target_count": 4})
    );
    assert_eq!(batch_status(&pool, s.batch_id).await, "completed");
    assert_eq!(order_status(&pool, s.order_id).await, "completed");
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "inactive"
    );
    let (started, ended): (bool, bool) = sqlx::query_as(
        "SELECT started_at IS NOT NULL, ended_at IS NOT NULL FROM batches WHERE id = $1",
    )
    .bind(s.batch_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(started && ended);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_batch_whose_tasks_all_finish_in_one_request_goes_from_pending_to_completed(
    pool: PgPool,
) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    s.add_tasks(s.batch_id, s.group_b, 1, "failed").await;
    let router = router(pool.clone());
    let response = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(3), &[]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(batch_status(&pool, s.batch_id).await, "completed");
    // The order is short of its target, so it only starts.
    assert_eq!(order_status(&pool, s.order_id).await, "in_progress");
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "inactive"
    );
    assert!(outbox(&pool).await.is_empty());
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_paused_order_is_not_advanced(pool: PgPool) {
    let s = Scenario::new(&pool, 2, 2, 1).await;
    sqlx::query("UPDATE orders SET status = 'paused' WHERE id = $1")
        .bind(s.order_id)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    let response = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["order"]["status"], "paused");
    assert_eq!(order_status(&pool, s.order_id).await, "paused");
    // No finalization: the other group's task is still pending.
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'pending'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pending, 1);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn break_and_offline_workstations_keep_their_status(pool: PgPool) {
    for status in ["break", "offline"] {
        let s = Scenario::new(&pool, 100, 2, 0).await;
        sqlx::query("UPDATE workstations SET status = $2 WHERE id = $1")
            .bind(s.seat.workstation_id)
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
        let router = router(pool.clone());
        let response = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        assert_eq!(batch_status(&pool, s.batch_id).await, "active");
        assert_eq!(
            workstation_status(&pool, s.seat.workstation_id).await,
            status
        );
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_workstation_stays_active_while_another_of_its_batches_is_active(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 1, 0).await;
    let other_batch = s.add_batch(s.order_id, s.seat.workstation_id).await;
    s.add_tasks(other_batch, s.group_a, 2, "pending").await;
    let router = router(pool.clone());
    let started = complete(&router, &s.seat.token, other_batch, s.group_a.body(1), &[]).await;
    assert_eq!(
        started.body["batch"]["status"], "active",
        "{}",
        started.text
    );
    let finished = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(
        finished.body["batch"]["status"], "completed",
        "{}",
        finished.text
    );
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "active"
    );
}

/// The order's other batches: one on an Axon robot with tasks in every status, one on an
/// Axon robot without a device id, one on an external device, and one already completed.
struct FinalizationWorld {
    s: Scenario,
    axon_batch: i64,
    no_device_batch: i64,
    external_batch: i64,
    done_batch: i64,
    axon_ready: Vec<i64>,
    axon_in_progress: Vec<i64>,
    axon_seat: Seat,
}

async fn finalization_world(pool: &PgPool) -> FinalizationWorld {
    let s = Scenario::new(pool, 3, 3, 0).await;
    let axon_seat = s
        .add_seat(
            "AX001",
            Some(json!({"requires_axon": true})),
            Some("axon-1"),
        )
        .await;
    let no_device_seat = s.add_seat("AX002", None, None).await;
    let external_seat = s
        .add_seat(
            "EX001",
            Some(json!({"requires_axon": false})),
            Some("ext-1"),
        )
        .await;

    let axon_batch = s.add_batch(s.order_id, axon_seat.workstation_id).await;
    let axon_ready = s.add_tasks(axon_batch, s.group_b, 2, "ready").await;
    let axon_in_progress = s.add_tasks(axon_batch, s.group_b, 1, "in_progress").await;
    s.add_tasks(axon_batch, s.group_b, 1, "pending").await;
    s.add_tasks(axon_batch, s.group_b, 1, "uploading").await;
    s.add_tasks(axon_batch, s.group_b, 1, "failed").await;
    sqlx::query("UPDATE batches SET status = 'active' WHERE id = $1")
        .bind(axon_batch)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE workstations SET status = 'active' WHERE id = $1")
        .bind(axon_seat.workstation_id)
        .execute(pool)
        .await
        .unwrap();

    let no_device_batch = s.add_batch(s.order_id, no_device_seat.workstation_id).await;
    s.add_tasks(no_device_batch, s.group_b, 1, "ready").await;
    let external_batch = s.add_batch(s.order_id, external_seat.workstation_id).await;
    s.add_tasks(external_batch, s.group_b, 1, "in_progress")
        .await;
    let done_batch = s.add_batch(s.order_id, external_seat.workstation_id).await;
    s.add_tasks(done_batch, s.group_b, 1, "ready").await;
    sqlx::query("UPDATE batches SET status = 'completed' WHERE id = $1")
        .bind(done_batch)
        .execute(pool)
        .await
        .unwrap();

    FinalizationWorld {
        s,
        axon_batch,
        no_device_batch,
        external_batch,
        done_batch,
        axon_ready,
        axon_in_progress,
        axon_seat,
    }
}

async fn public_batch_id(pool: &PgPool, id: i64) -> String {
    scalar_text(pool, "SELECT batch_id FROM batches WHERE id = $1", id).await
}

async fn public_task_id(pool: &PgPool, id: i64) -> String {
    scalar_text(pool, "SELECT task_id FROM tasks WHERE id = $1", id).await
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn reaching_the_target_finalizes_the_orders_other_open_batches(pool: PgPool) {
    let w = finalization_world(&pool).await;
    let s = &w.s;
    let done_before = task_statuses(&pool, w.done_batch).await;
    let router = router(pool.clone());

    let response = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(3), &[]).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["order"]["status"], "completed");
    assert_eq!(response.body["batch"]["status"], "completed");
    assert_eq!(order_status(&pool, s.order_id).await, "completed");
    for batch in [
        s.batch_id,
        w.axon_batch,
        w.no_device_batch,
        w.external_batch,
    ] {
        assert_eq!(
            batch_status(&pool, batch).await,
            "completed",
            "batch {batch}"
        );
        let (started, ended): (bool, bool) = sqlx::query_as(
            "SELECT started_at IS NOT NULL, ended_at IS NOT NULL FROM batches WHERE id = $1",
        )
        .bind(batch)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(
            started && ended,
            "batch {batch} has started_at and ended_at"
        );
    }
    // Runnable tasks are cancelled; uploading and failed ones are left alone.
    let axon: Vec<String> = task_statuses(&pool, w.axon_batch)
        .await
        .into_iter()
        .map(|(_, st)| st)
        .collect();
    assert_eq!(
        axon,
        [
            "cancelled",
            "cancelled",
            "cancelled",
            "cancelled",
            "uploading",
            "failed"
        ]
    );
    assert_eq!(
        task_statuses(&pool, w.done_batch).await,
        done_before,
        "a completed batch is untouched"
    );
    let runnable_left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE order_id = $1 AND batch_id <> $2 AND deleted_at IS NULL \
         AND status IN ('pending', 'ready', 'in_progress')",
    )
    .bind(s.order_id)
    .bind(w.done_batch)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(runnable_left, 0);
    assert_eq!(
        workstation_status(&pool, w.axon_seat.workstation_id).await,
        "inactive"
    );

    // Exactly one notification per ready / in_progress task on the Axon robot with a device.
    let expected: Vec<(String, String, String, String)> = {
        let mut rows = Vec::new();
        for (ids, action) in [(&w.axon_ready, "clear"), (&w.axon_in_progress, "cancel")] {
            for id in ids.iter() {
                let task_id = public_task_id(&pool, *id).await;
                let key = format!("order:{}:task:{}:{}", s.order_id, task_id, action);
                rows.push((key, action.to_owned(), "axon-1".to_owned(), task_id));
            }
        }
        rows
    };
    assert_eq!(outbox(&pool).await, expected);
    let batch_ids: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT batch_id FROM recorder_outbox")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(batch_ids, [public_batch_id(&pool, w.axon_batch).await]);
    let order_ids: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT order_id FROM recorder_outbox")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(order_ids, [s.order_id]);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn statement_count_does_not_grow_with_quantity(pool: PgPool) {
    // Two identical worlds; the same request path with quantity 1 and with quantity 500.
    let small = Scenario::new(&pool, 5_000, 600, 0).await;
    let large = Scenario::new(&pool, 5_000, 600, 0).await;
    let router = router(pool.clone());

    let (one, r1) = statements_run_by(
        &pool,
        complete(
            &router,
            &small.seat.token,
            small.batch_id,
            small.group_a.body(1),
            &[],
        ),
    )
    .await;
    let (many, r500) = statements_run_by(
        &pool,
        complete(
            &router,
            &large.seat.token,
            large.batch_id,
            large.group_a.body(500),
            &[],
        ),
    )
    .await;

    assert_eq!(r1.status, StatusCode::OK, "{}", r1.text);
    assert_eq!(r500.status, StatusCode::OK, "{}", r500.text);
    assert_eq!(r500.body["tasks"].as_array().map(Vec::len), Some(500));
    assert!(one > 5, "the counter sees the request's statements ({one})");
    assert_eq!(
        one, many,
        "quantity 1 ran {one} statements, quantity 500 ran {many}"
    );

    // The finalizing path too: each request completes its order.
    let small = Scenario::new(&pool, 1, 1, 0).await;
    let large = Scenario::new(&pool, 500, 500, 0).await;
    let (one, r1) = statements_run_by(
        &pool,
        complete(
            &router,
            &small.seat.token,
            small.batch_id,
            small.group_a.body(1),
            &[("idempotency-key", "k1")],
        ),
    )
    .await;
    let (many, r500) = statements_run_by(
        &pool,
        complete(
            &router,
            &large.seat.token,
            large.batch_id,
            large.group_a.body(500),
            &[("idempotency-key", "k1")],
        ),
    )
    .await;
    assert_eq!(r1.body["order"]["status"], "completed", "{}", r1.text);
    assert_eq!(r500.body["order"]["status"], "completed", "{}", r500.text);
    assert_eq!(
        one, many,
        "finalizing: quantity 1 ran {one} statements, quantity 500 ran {many}"
    );
}
