//! SPEC §5.13 progress views: an order's figures and batch counts; a batch's summary with
//! per-status and per-group counts, for an admin or the collector of its workstation.

use axum::http::StatusCode;
use keystone_tests::*;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_order_answers_its_figures_and_batches_by_status(pool: PgPool) {
    let s = Scenario::new(&pool, 20, 4, 2).await;
    let other = s.add_seat("DC900", None, Some("robot-x")).await;
    let second = s.add_batch(s.order_id, other.workstation_id).await;
    s.add_tasks(second, s.group_a, 3, "completed").await;
    let router = router(pool.clone());
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);

    let (statements, response) = statements_run_by(
        &pool,
        get(
            &router,
            &format!("/api/v1/orders/{}", s.order_id),
            Some(&admin_token()),
        ),
    )
    .await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let mut body = response.body.clone();
    for stamp in ["created_at", "updated_at"] {
        assert!(body[stamp].is_string(), "{stamp}");
        body.as_object_mut().unwrap().remove(stamp);
    }
    assert_eq!(
        body,
        json!({"id": s.order_id.to_string(), "name": "Kitchen run", "status": "in_progress",
               "priority": "normal", "target_count": 20, "task_count": 9, "completed_count": 5,
               "failed_count": 0, "cancelled_count": 0, "remaining_assignable": 11,
               "scene_id": s.scene_id.to_string(), "scene_name": "厨房",
               "organization_id": s.organization_id.to_string(), "organization_name": "Acme",
               "deadline": null, "metadata": {},
               "batch_counts": {"pending": 1, "active": 1, "completed": 0, "cancelled": 0, "recalled": 0}})
    );
    assert!(statements <= 6, "{statements} statements");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_batch_answers_its_summary_and_groups_by_status(pool: PgPool) {
    let s = Scenario::new(&pool, 20, 4, 2).await;
    s.add_tasks(s.batch_id, s.group_b, 1, "cancelled").await;
    let router = router(pool.clone());
    complete(&router, &s.seat.token, s.batch_id, s.group_a.body(3), &[]).await;
    let path = format!("/api/v1/batches/{}", s.batch_id);

    for token in [admin_token(), s.seat.token.clone()] {
        let response = get(&router, &path, Some(&token)).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        let body = &response.body;
        assert_eq!(body["id"], json!(s.batch_id.to_string()));
        assert_eq!(body["status"], json!("active"));
        assert_eq!(body["order_id"], json!(s.order_id.to_string()));
        assert_eq!(
            body["workstation_id"],
            json!(s.seat.workstation_id.to_string())
        );
        assert_eq!(
            (
                body["task_count"].as_i64(),
                body["completed_count"].as_i64()
            ),
            (Some(7), Some(3))
        );
        assert_eq!(body["status_counts"]["pending"], json!(3));
        assert_eq!(body["status_counts"]["cancelled"], json!(1));
        assert_eq!(body["status_counts"]["in_progress"], json!(0));
        let groups = body["task_groups"].as_array().unwrap();
        assert_eq!(groups.len(), 2);
        let a = groups
            .iter()
            .find(|g| g["sop_id"] == json!(s.group_a.sop_id.to_string()))
            .unwrap();
        assert_eq!(a["sop_slug"], json!("move_bottle"));
        assert_eq!(a["scene_name"], json!("厨房"));
        assert_eq!(a["subscene_name"], json!("台面"));
        assert_eq!(
            (
                a["task_count"].as_i64(),
                a["status_counts"]["completed"].as_i64()
            ),
            (Some(4), Some(3))
        );
        let b = groups
            .iter()
            .find(|g| g["sop_id"] == json!(s.group_b.sop_id.to_string()))
            .unwrap();
        assert_eq!(
            b["status_counts"],
            json!({"pending": 2, "ready": 0, "in_progress": 0,
            "uploading": 0, "completed": 0, "failed": 0, "cancelled": 1})
        );
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn progress_views_refuse_strangers_and_unknown_ids(pool: PgPool) {
    let s = Scenario::new(&pool, 20, 4, 0).await;
    let stranger = s.add_seat("DC901", None, Some("robot-y")).await;
    let router = router(pool.clone());
    let batch = format!("/api/v1/batches/{}", s.batch_id);
    let order = format!("/api/v1/orders/{}", s.order_id);
    get(&router, &batch, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "authentication required");
    get(&router, &batch, Some(&stranger.token))
        .await
        .assert_error(
            StatusCode::FORBIDDEN,
            "batch is not assigned to current workstation",
        );
    get(&router, &order, Some(&s.seat.token))
        .await
        .assert_error(StatusCode::FORBIDDEN, "admin role required");
    get(&router, "/api/v1/batches/999999", Some(&admin_token()))
        .await
        .assert_error(StatusCode::NOT_FOUND, "batch not found");
    get(&router, "/api/v1/orders/999999", Some(&admin_token()))
        .await
        .assert_error(StatusCode::NOT_FOUND, "order not found");
    get(&router, "/api/v1/batches/abc", Some(&admin_token()))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid batch id");
}
