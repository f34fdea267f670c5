//! SPEC §5.4: `POST /api/v1/orders/{id}/finalize`, an admin's decision, with the same
//! finalization as the complete-tasks path.

use axum::http::StatusCode;
use keystone_tests::*;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn finalizing_completes_the_order_and_its_open_batches(pool: PgPool) {
    for from in ["created", "in_progress", "paused"] {
        let s = Scenario::new(&pool, 100, 2, 1).await;
        sqlx::query("UPDATE orders SET status = $2 WHERE id = $1")
            .bind(s.order_id)
            .bind(from)
            .execute(&pool)
            .await
            .unwrap();
        s.add_tasks(s.batch_id, s.group_a, 1, "completed").await;
        let axon = s
            .add_seat(
                &format!("AX-{from}"),
                Some(json!({"requires_axon": true})),
                Some(&format!("axon-{from}")),
            )
            .await;
        let axon_batch = s.add_batch(s.order_id, axon.workstation_id).await;
        s.add_tasks(axon_batch, s.group_a, 1, "ready").await;
        s.add_tasks(axon_batch, s.group_a, 2, "in_progress").await;
        let router = router(pool.clone());

        let response = admin_post(&router, &finalize_path(s.order_id), json!({})).await;

        assert_eq!(response.status, StatusCode::OK, "{from}: {}", response.text);
        let public: Vec<String> =
            sqlx::query_scalar("SELECT batch_id FROM batches WHERE id IN ($1, $2) ORDER BY id")
                .bind(s.batch_id)
                .bind(axon_batch)
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            response.body,
            json!({
                "order": {"id": s.order_id.to_string(), "status": "completed", "completed_count": 1, "target_count": 100},
                "finalized": true,
                "cancelled_task_count": 6,
                "completed_batch_ids": public,
                "notifications_enqueued": 3,
            }),
            "{from}"
        );
        assert_eq!(order_status(&pool, s.order_id).await, "completed");
        assert_eq!(batch_status(&pool, axon_batch).await, "completed");
        let actions: Vec<String> = sqlx::query_scalar(
            "SELECT action FROM recorder_outbox WHERE order_id = $1 ORDER BY id",
        )
        .bind(s.order_id)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(actions, ["clear", "cancel", "cancel"]);
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn finalizing_a_completed_order_changes_nothing(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let router = router(pool.clone());
    let first = admin_post(&router, &finalize_path(s.order_id), json!({})).await;
    assert_eq!(first.body["finalized"], true, "{}", first.text);
    let before = snapshot(&pool).await;

    let again = admin_post(&router, &finalize_path(s.order_id), json!({})).await;

    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.body,
        json!({
            "order": {"id": s.order_id.to_string(), "status": "completed", "completed_count": 0, "target_count": 100},
            "finalized": false,
            "cancelled_task_count": 0,
            "completed_batch_ids": [],
            "notifications_enqueued": 0,
        })
    );
    assert_eq!(snapshot(&pool).await, before);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn cancelled_and_unknown_orders_are_refused(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let router = router(pool.clone());
    let admin = admin_token();
    let request = post_request(&finalize_path(s.order_id + 7), Some(&admin), "");
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::NOT_FOUND,
        "order not found",
    )
    .await;
    for id in ["x", "0", "-3", "99999999999999999999"] {
        let request = post_request(&finalize_path(id), Some(&admin), "");
        assert_refused(
            &pool,
            &router,
            request,
            StatusCode::BAD_REQUEST,
            "invalid order id",
        )
        .await;
    }
    sqlx::query("UPDATE orders SET status = 'cancelled' WHERE id = $1")
        .bind(s.order_id)
        .execute(&pool)
        .await
        .unwrap();
    let request = post_request(&finalize_path(s.order_id), Some(&admin), "");
    let response = assert_refused(
        &pool,
        &router,
        request,
        StatusCode::CONFLICT,
        "order is cancelled",
    )
    .await;
    assert_eq!(response.body["order_status"], "cancelled");
    let request = post_request(&finalize_path(s.order_id), Some(&s.seat.token), "");
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::FORBIDDEN,
        "admin role required",
    )
    .await;
}
