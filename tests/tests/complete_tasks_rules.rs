//! SPEC §5.1: one test per row of the checks table, plus malformed input. Every refusal must
//! leave the database exactly as it was.

use axum::http::StatusCode;
use keystone_auth::Principal;
use keystone_tests::*;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn auth_failures_get_the_spec_messages(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let router = router(pool.clone());
    let body = s.group_a.body(1).to_string();
    let no_header = complete_request(None, s.batch_id, body.clone(), &[]);
    assert_refused(
        &pool,
        &router,
        no_header,
        StatusCode::UNAUTHORIZED,
        "authentication required",
    )
    .await;

    for header in ["Token abc", "Bearer", "bearer", s.seat.token.as_str()] {
        let request =
            complete_request(None, s.batch_id, body.clone(), &[("authorization", header)]);
        let message = "invalid authorization header format";
        assert_refused(&pool, &router, request, StatusCode::UNAUTHORIZED, message).await;
    }

    let forged = format!("{}x", s.seat.token);
    for token in ["abc.def.ghi", forged.as_str()] {
        let request = complete_request(Some(token), s.batch_id, body.clone(), &[]);
        assert_refused(
            &pool,
            &router,
            request,
            StatusCode::UNAUTHORIZED,
            "invalid or expired token",
        )
        .await;
    }

    let admin = admin_token();
    let viewer = token_for(Principal::Unrecognized {
        role: "viewer".to_owned(),
    });
    for token in [admin.as_str(), viewer.as_str()] {
        let request = complete_request(Some(token), s.batch_id, body.clone(), &[]);
        assert_refused(
            &pool,
            &router,
            request,
            StatusCode::FORBIDDEN,
            "data collector role required",
        )
        .await;
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn batch_ids_that_are_not_positive_integers_are_refused(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let router = router(pool.clone());
    for id in ["abc", "0", "-1", "99999999999999999999", "1.5", "%20"] {
        let request = complete_request(Some(&s.seat.token), id, s.group_a.body(1).to_string(), &[]);
        assert_refused(
            &pool,
            &router,
            request,
            StatusCode::BAD_REQUEST,
            "invalid batch id",
        )
        .await;
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn bodies_that_are_not_json_of_the_right_shape_are_refused(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let router = router(pool.clone());
    let g = s.group_a;
    let bodies = [
        String::new(),
        "{".to_owned(),
        "not json".to_owned(),
        "[]".to_owned(),
        "null".to_owned(),
        format!(
            r#"{{"quantity":"3","sop_id":{},"subscene_id":{}}}"#,
            g.sop_id, g.subscene_id
        ),
        format!(
            r#"{{"quantity":1.5,"sop_id":{},"subscene_id":{}}}"#,
            g.sop_id, g.subscene_id
        ),
        format!(
            r#"{{"quantity":null,"sop_id":{},"subscene_id":{}}}"#,
            g.sop_id, g.subscene_id
        ),
        format!(
            r#"{{"quantity":1,"sop_id":null,"subscene_id":{}}}"#,
            g.subscene_id
        ),
        format!(
            r#"{{"quantity":1,"sop_id":"{}","subscene_id":{}}}"#,
            g.sop_id, g.subscene_id
        ),
        format!(
            r#"{{"quantity":1e30,"sop_id":{},"subscene_id":{}}}"#,
            g.sop_id, g.subscene_id
        ),
        format!(
            r#"{{"quantity":99999999999999999999,"sop_id":{},"subscene_id":{}}}"#,
            g.sop_id, g.subscene_id
        ),
    ];
    for body in bodies {
        let request = complete_request(Some(&s.seat.token), s.batch_id, body.clone(), &[]);
        let response = assert_refused(
            &pool,
            &router,
            request,
            StatusCode::BAD_REQUEST,
            "invalid request body",
        )
        .await;
        assert!(
            response.body["detail"].is_string(),
            "{body}: a detail says what is wrong"
        );
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn bodies_over_64_kib_get_413(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let router = router(pool.clone());
    let padding = "x".repeat(64 * 1024);
    let body = json!({"quantity": 1, "sop_id": s.group_a.sop_id, "subscene_id": s.group_a.subscene_id, "pad": padding});
    let request = complete_request(Some(&s.seat.token), s.batch_id, body.to_string(), &[]);
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body too large",
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn quantity_below_one_is_refused(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let router = router(pool.clone());
    for quantity in [0, -1, i64::MIN] {
        let request = complete_request(
            Some(&s.seat.token),
            s.batch_id,
            s.group_a.body(quantity).to_string(),
            &[],
        );
        assert_refused(
            &pool,
            &router,
            request,
            StatusCode::BAD_REQUEST,
            "quantity must be >= 1",
        )
        .await;
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn missing_or_non_positive_group_ids_are_refused(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let router = router(pool.clone());
    let g = s.group_a;
    let bodies = [
        json!({"quantity": 1}),
        json!({"quantity": 1, "sop_id": g.sop_id}),
        json!({"quantity": 1, "subscene_id": g.subscene_id}),
        json!({"quantity": 1, "sop_id": 0, "subscene_id": g.subscene_id}),
        json!({"quantity": 1, "sop_id": g.sop_id, "subscene_id": -4}),
    ];
    for body in bodies {
        let request = complete_request(Some(&s.seat.token), s.batch_id, body.to_string(), &[]);
        assert_refused(
            &pool,
            &router,
            request,
            StatusCode::BAD_REQUEST,
            "invalid task group",
        )
        .await;
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn invalid_idempotency_keys_are_refused(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let router = router(pool.clone());
    let long = "k".repeat(256);
    for key in ["", "has space", long.as_str()] {
        let request = complete_request(
            Some(&s.seat.token),
            s.batch_id,
            s.group_a.body(1).to_string(),
            &[("idempotency-key", key)],
        );
        assert_refused(
            &pool,
            &router,
            request,
            StatusCode::BAD_REQUEST,
            "invalid idempotency key",
        )
        .await;
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_deleted_collector_is_not_authenticated(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    sqlx::query("UPDATE data_collectors SET deleted_at = now() WHERE id = $1")
        .bind(s.seat.collector_id)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    let request = complete_request(
        Some(&s.seat.token),
        s.batch_id,
        s.group_a.body(1).to_string(),
        &[],
    );
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::UNAUTHORIZED,
        "collector not found",
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_collector_without_a_live_workstation_gets_404(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let router = router(pool.clone());
    let loner: i64 = sqlx::query_scalar(
        "INSERT INTO data_collectors (name, operator_id) VALUES ('Li', 'DC009') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let request = complete_request(
        Some(&collector_token(loner)),
        s.batch_id,
        s.group_a.body(1).to_string(),
        &[],
    );
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::NOT_FOUND,
        "workstation not assigned",
    )
    .await;

    sqlx::query("UPDATE workstations SET deleted_at = now() WHERE id = $1")
        .bind(s.seat.workstation_id)
        .execute(&pool)
        .await
        .unwrap();
    let request = complete_request(
        Some(&s.seat.token),
        s.batch_id,
        s.group_a.body(1).to_string(),
        &[],
    );
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::NOT_FOUND,
        "workstation not assigned",
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_missing_or_deleted_batch_gets_404(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let router = router(pool.clone());
    let request = complete_request(
        Some(&s.seat.token),
        s.batch_id + 1000,
        s.group_a.body(1).to_string(),
        &[],
    );
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::NOT_FOUND,
        "batch not found",
    )
    .await;

    sqlx::query("UPDATE batches SET deleted_at = now() WHERE id = $1")
        .bind(s.batch_id)
        .execute(&pool)
        .await
        .unwrap();
    let request = complete_request(
        Some(&s.seat.token),
        s.batch_id,
        s.group_a.body(1).to_string(),
        &[],
    );
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::NOT_FOUND,
        "batch not found",
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_batch_of_another_workstation_gets_403(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let other = s
        .add_seat(
            "DC002",
            Some(json!({"requires_axon": false})),
            Some("robot_other"),
        )
        .await;
    let router = router(pool.clone());
    let request = complete_request(
        Some(&other.token),
        s.batch_id,
        s.group_a.body(1).to_string(),
        &[],
    );
    let message = "batch is not assigned to current workstation";
    assert_refused(&pool, &router, request, StatusCode::FORBIDDEN, message).await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_workstation_whose_robot_type_needs_axon_gets_409(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let router = router(pool.clone());
    // Missing capabilities, a missing key and an explicit true all mean Axon.
    for capabilities in [
        json!(null),
        json!({}),
        json!({"requires_axon": true}),
        json!({"requires_axon": "false"}),
    ] {
        sqlx::query(
            "UPDATE robot_types SET capabilities = $1 \
             WHERE id = (SELECT robot_type_id FROM robots WHERE id = $2)",
        )
        .bind(if capabilities.is_null() {
            None
        } else {
            Some(capabilities.clone())
        })
        .bind(s.seat.robot_id)
        .execute(&pool)
        .await
        .unwrap();
        let request = complete_request(
            Some(&s.seat.token),
            s.batch_id,
            s.group_a.body(1).to_string(),
            &[],
        );
        let message = "workstation robot type requires the axon workflow";
        let response = assert_refused(&pool, &router, request, StatusCode::CONFLICT, message).await;
        assert_eq!(
            response.body["requires_axon"],
            json!(true),
            "{capabilities}"
        );
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_cancelled_order_gets_409(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    sqlx::query("UPDATE orders SET status = 'cancelled' WHERE id = $1")
        .bind(s.order_id)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    let request = complete_request(
        Some(&s.seat.token),
        s.batch_id,
        s.group_a.body(1).to_string(),
        &[],
    );
    let response = assert_refused(
        &pool,
        &router,
        request,
        StatusCode::CONFLICT,
        "order is cancelled",
    )
    .await;
    assert_eq!(response.body["order_status"], json!("cancelled"));
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_batch_that_is_not_pending_or_active_gets_409_with_its_figures(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    sqlx::query("UPDATE tasks SET status = 'completed' WHERE id IN (SELECT id FROM tasks WHERE batch_id = $1 ORDER BY id LIMIT 2)")
        .bind(s.batch_id).execute(&pool).await.unwrap();
    let router = router(pool.clone());
    for status in ["completed", "cancelled", "recalled"] {
        sqlx::query("UPDATE batches SET status = $2 WHERE id = $1")
            .bind(s.batch_id)
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
        let request = complete_request(
            Some(&s.seat.token),
            s.batch_id,
            s.group_a.body(1).to_string(),
            &[],
        );
        let message =
            format!("batch is {status}; only pending or active batches accept task completions");
        let response =
            assert_refused(&pool, &router, request, StatusCode::CONFLICT, &message).await;
        assert_eq!(response.body["current_status"], json!(status));
        assert_eq!(response.body["completed_count"], json!(2));
        assert_eq!(response.body["task_count"], json!(6));
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn quantity_above_the_batch_task_count_gets_400(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 3).await;
    // Deleted tasks do not count.
    let extra = s.add_tasks(s.batch_id, s.group_a, 4, "pending").await;
    sqlx::query("UPDATE tasks SET deleted_at = now() WHERE id = ANY($1)")
        .bind(&extra)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    let request = complete_request(
        Some(&s.seat.token),
        s.batch_id,
        s.group_a.body(7).to_string(),
        &[],
    );
    let message = "quantity 7 exceeds the batch's 6 live tasks";
    let response = assert_refused(&pool, &router, request, StatusCode::BAD_REQUEST, message).await;
    assert_eq!(response.body["task_count"], json!(6));
    assert_eq!(response.body["requested"], json!(7));
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_group_without_live_tasks_in_the_batch_gets_404(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 0).await;
    let router = router(pool.clone());
    let unknown = Group {
        sop_id: s.group_a.sop_id,
        subscene_id: s.group_b.subscene_id,
    };
    for group in [s.group_b, unknown] {
        let request = complete_request(
            Some(&s.seat.token),
            s.batch_id,
            group.body(1).to_string(),
            &[],
        );
        assert_refused(
            &pool,
            &router,
            request,
            StatusCode::NOT_FOUND,
            "task group not found in batch",
        )
        .await;
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn fewer_pending_tasks_than_requested_gets_400_with_the_pending_count(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 3).await;
    s.add_tasks(s.batch_id, s.group_a, 2, "completed").await;
    let router = router(pool.clone());
    let request = complete_request(
        Some(&s.seat.token),
        s.batch_id,
        s.group_a.body(4).to_string(),
        &[],
    );
    let message = "task group has 3 pending tasks; 4 requested";
    let response = assert_refused(&pool, &router, request, StatusCode::BAD_REQUEST, message).await;
    assert_eq!(response.body["pending_count"], json!(3));
    assert_eq!(response.body["requested"], json!(4));
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn checks_run_in_the_tables_order(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 3).await;
    let other = s.add_seat("DC002", None, Some("axon-1")).await;
    sqlx::query("UPDATE orders SET status = 'cancelled' WHERE id = $1")
        .bind(s.order_id)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    // Another workstation's batch beats the Axon rule; Axon beats the cancelled order.
    let request = complete_request(
        Some(&other.token),
        s.batch_id,
        s.group_a.body(1).to_string(),
        &[],
    );
    let message = "batch is not assigned to current workstation";
    assert_refused(&pool, &router, request, StatusCode::FORBIDDEN, message).await;
    let axon_batch = s.add_batch(s.order_id, other.workstation_id).await;
    let request = complete_request(
        Some(&other.token),
        axon_batch,
        s.group_a.body(1).to_string(),
        &[],
    );
    let message = "workstation robot type requires the axon workflow";
    assert_refused(&pool, &router, request, StatusCode::CONFLICT, message).await;
    // An invalid id beats a bad body; a bad quantity beats a bad group.
    let request = complete_request(Some(&s.seat.token), "abc", "{", &[]);
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::BAD_REQUEST,
        "invalid batch id",
    )
    .await;
    let request = complete_request(Some(&s.seat.token), s.batch_id, r#"{"quantity":0}"#, &[]);
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::BAD_REQUEST,
        "quantity must be >= 1",
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn unknown_routes_and_methods_answer_json(pool: PgPool) {
    let router = router(pool.clone());
    let response = send(
        &router,
        axum::http::Method::GET,
        "/api/v1/nothing",
        None,
        &[],
        "",
    )
    .await;
    response.assert_error(StatusCode::NOT_FOUND, "not found");
    let response = send(
        &router,
        axum::http::Method::GET,
        &complete_path(1),
        None,
        &[],
        "",
    )
    .await;
    response.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
}
