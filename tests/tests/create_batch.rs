//! SPEC §5.3: `POST /api/v1/batches` creates a batch and all its tasks atomically.

use axum::http::{Method, StatusCode};
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

const CREATE: &str = "/api/v1/batches";

fn body(s: &Scenario, workstation_id: i64, entries: &[Value]) -> Value {
    json!({
        "order_id": s.order_id,
        "workstation_id": workstation_id,
        "notes": "night shift",
        "metadata": {"shift": "night", "line": 3},
        "task_groups": entries,
    })
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn creates_a_pending_batch_and_its_tasks(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let router = router(pool.clone());

    let response = admin_post(
        &router,
        CREATE,
        body(
            &s,
            s.seat.workstation_id,
            &[s.group_a.entry(3), s.group_b.entry(2)],
        ),
    )
    .await;

    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    let batch = &response.body["batch"];
    let id: i64 = batch["id"].as_str().unwrap().parse().unwrap();
    assert!(batch["batch_id"].as_str().unwrap().starts_with("batch_"));
    assert_eq!(batch["status"], "pending");
    assert_eq!(batch["order_id"], json!(s.order_id.to_string()));
    assert_eq!(
        batch["workstation_id"],
        json!(s.seat.workstation_id.to_string())
    );
    assert_eq!(
        batch["organization_id"],
        json!(s.organization_id.to_string())
    );
    assert_eq!(batch["notes"], "night shift");
    assert_eq!(batch["metadata"], json!({"shift": "night", "line": 3}));
    assert_eq!(
        (
            batch["task_count"].clone(),
            batch["completed_count"].clone()
        ),
        (json!(5), json!(0))
    );
    assert_eq!(response.body["tasks"].as_array().map(Vec::len), Some(5));
    assert_eq!(live_counts(&pool, id).await, [("pending".to_owned(), 5)]);
    assert_eq!(batch_status(&pool, id).await, "pending");
    let names: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT scene_name, subscene_name FROM tasks WHERE batch_id = $1 ORDER BY 2",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        names,
        [
            ("厨房".to_owned(), "台面".to_owned()),
            ("厨房".to_owned(), "水槽".to_owned())
        ]
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn only_admins_may_create(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 0, 0).await;
    let router = router(pool.clone());
    let payload = body(&s, s.seat.workstation_id, &[s.group_a.entry(1)]).to_string();
    let request = post_request(CREATE, Some(&s.seat.token), payload);
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::FORBIDDEN,
        "admin role required",
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn malformed_requests_are_refused(pool: PgPool) {
    let s = Scenario::new(&pool, 5_000, 0, 0).await;
    let router = router(pool.clone());
    let admin = admin_token();
    let ws = s.seat.workstation_id;
    let (a, b) = (s.group_a, s.group_b);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"workstation_id": ws, "task_groups": [a.entry(1)]}),
            "order_id is required",
        ),
        (
            json!({"order_id": s.order_id, "task_groups": [a.entry(1)]}),
            "workstation_id is required",
        ),
        (
            json!({"order_id": s.order_id, "workstation_id": ws}),
            "task_groups must not be empty",
        ),
        (body(&s, ws, &[]), "task_groups must not be empty"),
        (
            body(&s, ws, &[a.entry(0)]),
            "task_groups[0].quantity must be >= 1",
        ),
        (
            body(
                &s,
                ws,
                &[
                    a.entry(1),
                    json!({"sop_id": a.sop_id, "subscene_id": -1, "quantity": 1}),
                ],
            ),
            "task_groups[1] needs a positive sop_id and subscene_id",
        ),
        (
            body(&s, ws, &[a.entry(600), b.entry(401)]),
            "a batch may be created with at most 1000 tasks; 1001 requested",
        ),
        (
            json!({"order_id": "4", "workstation_id": ws, "task_groups": [a.entry(1)]}),
            "invalid request body",
        ),
        (
            json!({"order_id": s.order_id + 50, "workstation_id": ws, "task_groups": [a.entry(1)]}),
            "unknown order",
        ),
        (body(&s, ws + 50, &[a.entry(1)]), "unknown workstation"),
        (
            body(
                &s,
                ws,
                &[Group {
                    sop_id: 4_242,
                    subscene_id: a.subscene_id,
                }
                .entry(1)],
            ),
            "unknown sop_id 4242",
        ),
        (
            body(
                &s,
                ws,
                &[Group {
                    sop_id: a.sop_id,
                    subscene_id: 4_343,
                }
                .entry(1)],
            ),
            "unknown subscene_id 4343",
        ),
    ];
    for (payload, message) in cases {
        let request = post_request(CREATE, Some(&admin), payload.to_string());
        assert_refused(&pool, &router, request, StatusCode::BAD_REQUEST, message).await;
    }
    let duplicate = body(&s, ws, &[a.entry(1), a.entry(2)]);
    let request = post_request(CREATE, Some(&admin), duplicate.to_string());
    let response = assert_refused(
        &pool,
        &router,
        request,
        StatusCode::BAD_REQUEST,
        &format!(
            "task_groups[0] and task_groups[1] name the same group (sop_id {}, subscene_id {})",
            a.sop_id, a.subscene_id
        ),
    )
    .await;
    assert_eq!(response.body["indexes"], json!([0, 1]));
    // Exactly 1000 is fine.
    let response = admin_post(&router, CREATE, body(&s, ws, &[a.entry(600), b.entry(400)])).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_workstation_of_another_organization_is_refused(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 0, 0).await;
    let other = Scenario::new(&pool, 100, 0, 0).await;
    let router = router(pool.clone());
    let request = post_request(
        CREATE,
        Some(&admin_token()),
        body(&s, other.seat.workstation_id, &[s.group_a.entry(1)]).to_string(),
    );
    let message = "workstation belongs to another organization than the order";
    assert_refused(&pool, &router, request, StatusCode::BAD_REQUEST, message).await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn completed_and_cancelled_orders_take_no_new_batches(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 0, 0).await;
    let router = router(pool.clone());
    for status in ["completed", "cancelled"] {
        sqlx::query("UPDATE orders SET status = $2 WHERE id = $1")
            .bind(s.order_id)
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
        let request = post_request(
            CREATE,
            Some(&admin_token()),
            body(&s, s.seat.workstation_id, &[s.group_a.entry(1)]).to_string(),
        );
        let message = format!("order is {status}; cannot create a batch");
        let response =
            assert_refused(&pool, &router, request, StatusCode::CONFLICT, &message).await;
        assert_eq!(response.body["order_status"], json!(status));
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn requests_beyond_the_remaining_assignable_count_are_refused(pool: PgPool) {
    // Target 10 with 7 live tasks (completed ones count, deleted ones do not).
    let s = Scenario::new(&pool, 10, 5, 0).await;
    s.add_tasks(s.batch_id, s.group_b, 2, "completed").await;
    let deleted = s.add_tasks(s.batch_id, s.group_b, 4, "pending").await;
    sqlx::query("UPDATE tasks SET deleted_at = now() WHERE id = ANY($1)")
        .bind(&deleted)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    let request = post_request(
        CREATE,
        Some(&admin_token()),
        body(
            &s,
            s.seat.workstation_id,
            &[s.group_a.entry(2), s.group_b.entry(2)],
        )
        .to_string(),
    );
    let message = "requested tasks exceed the order's remaining assignable count";
    let response = assert_refused(&pool, &router, request, StatusCode::BAD_REQUEST, message).await;
    assert_eq!(
        response.body,
        json!({"error": message, "code": "order_quota_exceeded", "target_count": 10, "task_count": 7,
               "remaining": 3, "requested": 4})
    );
    let response = admin_post(
        &router,
        CREATE,
        body(&s, s.seat.workstation_id, &[s.group_a.entry(3)]),
    )
    .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    assert_eq!(order_task_count(&pool, s.order_id).await, 10);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn create_statement_count_does_not_grow_with_quantity(pool: PgPool) {
    let s = Scenario::new(&pool, 5_000, 0, 0).await;
    let router = router(pool.clone());
    let (one, r1) = statements_run_by(
        &pool,
        admin_post(
            &router,
            CREATE,
            body(&s, s.seat.workstation_id, &[s.group_a.entry(1)]),
        ),
    )
    .await;
    let (many, r1000) = statements_run_by(
        &pool,
        admin_post(
            &router,
            CREATE,
            body(
                &s,
                s.seat.workstation_id,
                &[s.group_a.entry(500), s.group_b.entry(500)],
            ),
        ),
    )
    .await;
    assert_eq!(
        (r1.status, r1000.status),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{} {}",
        r1.text,
        r1000.text
    );
    assert!(one > 4, "the counter sees the request's statements ({one})");
    assert_eq!(
        one, many,
        "1 task ran {one} statements, 1000 tasks ran {many}"
    );
}

/// SPEC §5.15: an `Idempotency-Key` makes a repeated create safe — the same body answers the
/// first 201 (marked replayed) and creates nothing; another body under the key is a 422.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_idempotency_key_makes_a_repeated_create_safe(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 0, 0).await;
    let router = router(pool.clone());
    let a = s.group_a;
    let post = |body: Value| {
        let router = router.clone();
        async move {
            send(
                &router,
                Method::POST,
                CREATE,
                Some(&admin_token()),
                &[("idempotency-key", "batch-once")],
                body.to_string(),
            )
            .await
        }
    };
    let first = post(body(&s, s.seat.workstation_id, &[a.entry(3)])).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = post(body(&s, s.seat.workstation_id, &[a.entry(3)])).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.text, first.text);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert!(first.headers.get("idempotent-replayed").is_none());
    let batches: i64 = sqlx::query_scalar("SELECT count(*) FROM batches WHERE order_id = $1")
        .bind(s.order_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(batches, 2, "the scenario's and one more");
    post(body(&s, s.seat.workstation_id, &[a.entry(4)]))
        .await
        .assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency key reused with a different request",
        );
}
