//! Numbers at and past the type limits on every endpoint that takes one (SPEC §5): a clear
//! 4xx, never a 5xx, a panic or a wrapped sum. Debug test builds trap overflow, and release
//! builds do too (`overflow-checks = true` in the workspace profile), so these cover both.

use axum::http::{Method, StatusCode};
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

const MAX: i64 = i64::MAX;
/// One past `i64::MAX`: not representable, so not a number the API takes.
const PAST_MAX: &str = "9223372036854775808";

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn complete_tasks_refuses_numbers_at_and_past_the_limits(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let router = router(pool.clone());
    let (sop, subscene) = (s.group_a.sop_id, s.group_a.subscene_id);
    let cases: Vec<(String, String, StatusCode, &str)> = vec![
        (
            complete_path(s.batch_id),
            json!({"quantity": MAX, "sop_id": sop, "subscene_id": subscene}).to_string(),
            StatusCode::BAD_REQUEST,
            "quantity 9223372036854775807 exceeds the batch's 3 live tasks",
        ),
        (
            complete_path(s.batch_id),
            format!(r#"{{"quantity":{PAST_MAX},"sop_id":{sop},"subscene_id":{subscene}}}"#),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        (
            complete_path(s.batch_id),
            json!({"quantity": i64::MIN, "sop_id": sop, "subscene_id": subscene}).to_string(),
            StatusCode::BAD_REQUEST,
            "quantity must be >= 1",
        ),
        (
            complete_path(s.batch_id),
            json!({"quantity": 1, "sop_id": MAX, "subscene_id": MAX}).to_string(),
            StatusCode::NOT_FOUND,
            "task group not found in batch",
        ),
        (
            complete_path(MAX),
            json!({"quantity": 1, "sop_id": sop, "subscene_id": subscene}).to_string(),
            StatusCode::NOT_FOUND,
            "batch not found",
        ),
        (
            format!("/api/v1/batches/{PAST_MAX}/complete-tasks"),
            json!({"quantity": 1, "sop_id": sop, "subscene_id": subscene}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid batch id",
        ),
    ];
    let before = snapshot(&pool).await;
    for (path, body, status, message) in cases {
        let response = send(
            &router,
            Method::POST,
            &path,
            Some(&s.seat.token),
            &[],
            body.clone(),
        )
        .await;
        assert_eq!(response.status, status, "{path} {body}: {}", response.text);
        assert_eq!(response.body["error"], json!(message), "{path} {body}");
    }
    assert_eq!(snapshot(&pool).await, before);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn admin_endpoints_refuse_numbers_at_and_past_the_limits(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let router = router(pool.clone());
    let create = |order: Value, workstation: Value, groups: Value| json!({"order_id": order, "workstation_id": workstation, "task_groups": groups});
    let (order, ws) = (json!(s.order_id), json!(s.seat.workstation_id));
    let cases: Vec<(String, String, StatusCode, String)> = vec![
        (
            "/api/v1/batches".to_owned(),
            create(order.clone(), ws.clone(), json!([s.group_a.entry(MAX)])).to_string(),
            StatusCode::BAD_REQUEST,
            format!("a batch may be created with at most 1000 tasks; {MAX} requested"),
        ),
        (
            "/api/v1/batches".to_owned(),
            create(
                order.clone(),
                ws.clone(),
                json!([s.group_a.entry(MAX), s.group_b.entry(MAX)]),
            )
            .to_string(),
            StatusCode::BAD_REQUEST,
            format!("a batch may be created with at most 1000 tasks; {MAX} requested"),
        ),
        (
            "/api/v1/batches".to_owned(),
            create(json!(MAX), ws.clone(), json!([s.group_a.entry(1)])).to_string(),
            StatusCode::BAD_REQUEST,
            "unknown order".to_owned(),
        ),
        (
            "/api/v1/batches".to_owned(),
            create(order.clone(), json!(MAX), json!([s.group_a.entry(1)])).to_string(),
            StatusCode::BAD_REQUEST,
            "unknown workstation".to_owned(),
        ),
        (
            "/api/v1/batches".to_owned(),
            format!(
                r#"{{"order_id":{PAST_MAX},"workstation_id":{},"task_groups":[{}]}}"#,
                s.seat.workstation_id,
                s.group_a.entry(1)
            ),
            StatusCode::BAD_REQUEST,
            "invalid request body".to_owned(),
        ),
        (
            adjust_path(MAX),
            json!({"task_groups": [s.group_a.entry(1)]}).to_string(),
            StatusCode::NOT_FOUND,
            "batch not found".to_owned(),
        ),
        (
            finalize_path(MAX),
            String::new(),
            StatusCode::NOT_FOUND,
            "order not found".to_owned(),
        ),
        (
            format!("/api/v1/orders/{PAST_MAX}/finalize"),
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid order id".to_owned(),
        ),
    ];
    let before = snapshot(&pool).await;
    for (path, body, status, message) in cases {
        let response = send(
            &router,
            Method::POST,
            &path,
            Some(&admin_token()),
            &[],
            body.clone(),
        )
        .await;
        assert_eq!(response.status, status, "{path} {body}: {}", response.text);
        assert_eq!(response.body["error"], json!(message), "{path} {body}");
    }
    assert_eq!(snapshot(&pool).await, before);
}
