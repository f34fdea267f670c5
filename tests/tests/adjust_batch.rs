//! SPEC §5.2: `POST /api/v1/batches/{id}/tasks`, declarative per-group targets.

use axum::http::StatusCode;
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

fn groups(entries: &[Value]) -> String {
    json!({ "task_groups": entries }).to_string()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn only_admins_may_adjust(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let router = router(pool.clone());
    let body = groups(&[s.group_a.entry(5)]);
    let request = post_request(&adjust_path(s.batch_id), None, body.clone());
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::UNAUTHORIZED,
        "authentication required",
    )
    .await;
    let request = post_request(&adjust_path(s.batch_id), Some(&s.seat.token), body);
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
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let router = router(pool.clone());
    let admin = admin_token();
    let (a, b) = (s.group_a, s.group_b);
    let cases: Vec<(String, String, &str)> = vec![
        (
            adjust_path("abc"),
            groups(&[a.entry(1)]),
            "invalid batch id",
        ),
        (adjust_path(0), groups(&[a.entry(1)]), "invalid batch id"),
        (
            adjust_path(s.batch_id),
            "{".to_owned(),
            "invalid request body",
        ),
        (
            adjust_path(s.batch_id),
            r#"{"task_groups":[{"sop_id":1,"subscene_id":1,"quantity":null}]}"#.to_owned(),
            "invalid request body",
        ),
        (
            adjust_path(s.batch_id),
            groups(&[]),
            "task_groups must not be empty",
        ),
        (
            adjust_path(s.batch_id),
            "{}".to_owned(),
            "task_groups must not be empty",
        ),
        (
            adjust_path(s.batch_id),
            groups(&[
                a.entry(1),
                json!({"sop_id": 0, "subscene_id": 1, "quantity": 1}),
            ]),
            "task_groups[1] needs a positive sop_id and subscene_id",
        ),
        (
            adjust_path(s.batch_id),
            groups(&[json!({"subscene_id": b.subscene_id, "quantity": 1})]),
            "task_groups[0] needs a positive sop_id and subscene_id",
        ),
        (
            adjust_path(s.batch_id),
            groups(&[a.entry(-1)]),
            "task_groups[0].quantity must be >= 0",
        ),
    ];
    for (path, body, message) in cases {
        let request = post_request(&path, Some(&admin), body);
        assert_refused(&pool, &router, request, StatusCode::BAD_REQUEST, message).await;
    }
    let duplicate = groups(&[a.entry(1), b.entry(2), a.entry(3)]);
    let request = post_request(&adjust_path(s.batch_id), Some(&admin), duplicate);
    let message = format!(
        "task_groups[0] and task_groups[2] name the same group (sop_id {}, subscene_id {})",
        a.sop_id, a.subscene_id
    );
    let response = assert_refused(&pool, &router, request, StatusCode::BAD_REQUEST, &message).await;
    assert_eq!(response.body["indexes"], json!([0, 2]));
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn missing_batches_and_closed_batches_are_refused(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let router = router(pool.clone());
    let admin = admin_token();
    let request = post_request(
        &adjust_path(s.batch_id + 99),
        Some(&admin),
        groups(&[s.group_a.entry(1)]),
    );
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::NOT_FOUND,
        "batch not found",
    )
    .await;
    for status in ["completed", "cancelled", "recalled"] {
        sqlx::query("UPDATE batches SET status = $2 WHERE id = $1")
            .bind(s.batch_id)
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
        let request = post_request(
            &adjust_path(s.batch_id),
            Some(&admin),
            groups(&[s.group_a.entry(1)]),
        );
        let message = format!("batch is {status}; only pending or active batches can be edited");
        let response =
            assert_refused(&pool, &router, request, StatusCode::CONFLICT, &message).await;
        assert_eq!(response.body["current_status"], json!(status));
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_group_cannot_go_below_its_locked_tasks(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    s.add_tasks(s.batch_id, s.group_a, 1, "completed").await;
    s.add_tasks(s.batch_id, s.group_a, 1, "ready").await;
    let with_episode = s.add_tasks(s.batch_id, s.group_a, 1, "pending").await;
    sqlx::query("UPDATE tasks SET episode_id = 77 WHERE id = $1")
        .bind(with_episode[0])
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    let request = post_request(
        &adjust_path(s.batch_id),
        Some(&admin_token()),
        groups(&[s.group_a.entry(2)]),
    );
    let message = format!(
        "task group (sop_id {}, subscene_id {}) has 3 locked tasks; cannot go down to 2",
        s.group_a.sop_id, s.group_a.subscene_id
    );
    let response = assert_refused(&pool, &router, request, StatusCode::BAD_REQUEST, &message).await;
    assert_eq!(response.body["locked_count"], json!(3));
    assert_eq!(response.body["requested"], json!(2));
    assert_eq!(response.body["sop_id"], json!(s.group_a.sop_id));

    // Down to exactly the locked count removes both removable pending tasks.
    let response = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(3)]}),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(
        response.body["deleted_task_ids"].as_array().map(Vec::len),
        Some(2)
    );
    let left: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM tasks WHERE batch_id = $1 AND deleted_at IS NULL AND status = 'pending'",
    )
    .bind(s.batch_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        left, with_episode,
        "the pending task with an episode is locked and stays"
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn reductions_soft_delete_the_newest_pending_tasks(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 0, 2).await;
    let tasks = s.add_tasks(s.batch_id, s.group_a, 5, "pending").await;
    // created_at decides, then id: tasks[1] is the newest, tasks[3] and tasks[4] tie.
    sqlx::query(
        "UPDATE tasks SET created_at = CASE WHEN id = $2 THEN now() + interval '1 hour' \
                                            WHEN id IN ($3, $4) THEN now() + interval '1 minute' \
                                            ELSE now() - interval '1 hour' END \
         WHERE id = ANY($1)",
    )
    .bind(&tasks)
    .bind(tasks[1])
    .bind(tasks[3])
    .bind(tasks[4])
    .execute(&pool)
    .await
    .unwrap();
    let router = router(pool.clone());

    let response = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(2)]}),
    )
    .await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let mut deleted: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM tasks WHERE deleted_at IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    deleted.sort_unstable();
    assert_eq!(deleted, [tasks[1], tasks[3], tasks[4]]);
    let mut reported: Vec<String> = response.body["deleted_task_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    reported.sort();
    let mut expected: Vec<String> =
        sqlx::query_scalar("SELECT task_id FROM tasks WHERE deleted_at IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    expected.sort();
    assert_eq!(reported, expected);
    assert_eq!(response.body["created_tasks"], json!([]));
    // Groups not named keep their count.
    assert_eq!(
        live_counts(&pool, s.batch_id).await,
        [("pending".to_owned(), 4)]
    );
}

/// The columns an insertion fills, in query order.
type InsertedRow = (
    i64,
    i64,
    i64,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    bool,
);

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn insertions_create_pending_tasks_with_denormalized_fields(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 1, 0).await;
    sqlx::query("UPDATE subscenes SET initial_scene_layout = 'left shelf' WHERE id = $1")
        .bind(s.group_b.subscene_id)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());

    let response = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(3), s.group_b.entry(2)]}),
    )
    .await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let created = response.body["created_tasks"].as_array().unwrap();
    assert_eq!(created.len(), 4);
    for task in created {
        assert_eq!(task["status"], "pending");
        assert!(
            task["id"].is_string() && task["sop_id"].is_string() && task["subscene_id"].is_string()
        );
        let task_id = task["task_id"].as_str().unwrap();
        let parts: Vec<&str> = task_id.split('_').collect();
        assert_eq!(
            (parts[0], parts.len(), parts[5].len()),
            ("task", 6, 8),
            "{task_id}"
        );
        assert!(chrono::DateTime::parse_from_rfc3339(task["created_at"].as_str().unwrap()).is_ok());
    }
    let rows: Vec<InsertedRow> = sqlx::query_as(
        "SELECT sop_id, subscene_id, scene_id, scene_name, subscene_name, workstation_id, order_id, \
                factory_id, initial_scene_layout, assigned_at IS NOT NULL \
         FROM tasks WHERE batch_id = $1 AND id > (SELECT min(id) FROM tasks WHERE batch_id = $1) ORDER BY id",
    )
    .bind(s.batch_id).fetch_all(&pool).await.unwrap();
    assert_eq!(rows.len(), 4);
    for (i, row) in rows.iter().enumerate() {
        let group = if i < 2 { s.group_a } else { s.group_b };
        let (subscene, layout) = if i < 2 {
            ("台面", None)
        } else {
            ("水槽", Some("left shelf".to_owned()))
        };
        assert_eq!(row.0, group.sop_id);
        assert_eq!(row.1, group.subscene_id);
        assert_eq!(row.2, s.scene_id);
        assert_eq!((row.3.as_str(), row.4.as_str()), ("厨房", subscene));
        assert_eq!(
            (row.5, row.6, row.7),
            (s.seat.workstation_id, s.order_id, Some(1))
        );
        assert_eq!(row.8, layout);
        assert!(row.9, "assigned_at is set");
    }
    // Inserting into a pending batch does not start it.
    assert_eq!(batch_status(&pool, s.batch_id).await, "pending");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn unknown_sops_and_subscenes_are_refused(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 1, 0).await;
    let router = router(pool.clone());
    let admin = admin_token();
    let unknown_sop = Group {
        sop_id: 9_999,
        subscene_id: s.group_a.subscene_id,
    };
    let request = post_request(
        &adjust_path(s.batch_id),
        Some(&admin),
        groups(&[unknown_sop.entry(1)]),
    );
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::BAD_REQUEST,
        "unknown sop_id 9999",
    )
    .await;
    let unknown_subscene = Group {
        sop_id: s.group_a.sop_id,
        subscene_id: 8_888,
    };
    let request = post_request(
        &adjust_path(s.batch_id),
        Some(&admin),
        groups(&[unknown_subscene.entry(1)]),
    );
    assert_refused(
        &pool,
        &router,
        request,
        StatusCode::BAD_REQUEST,
        "unknown subscene_id 8888",
    )
    .await;
    // A target of zero for an unknown group is a no-op, not an error.
    let response = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [unknown_sop.entry(0)]}),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn raising_the_batch_past_the_order_target_is_refused_with_the_figures(pool: PgPool) {
    // Target 10: this batch holds 4, another batch of the order holds 3.
    let s = Scenario::new(&pool, 10, 4, 0).await;
    let other = s.add_batch(s.order_id, s.seat.workstation_id).await;
    s.add_tasks(other, s.group_a, 3, "pending").await;
    let router = router(pool.clone());
    let request = post_request(
        &adjust_path(s.batch_id),
        Some(&admin_token()),
        groups(&[s.group_a.entry(5), s.group_b.entry(3)]),
    );
    let response = assert_refused(
        &pool,
        &router,
        request,
        StatusCode::BAD_REQUEST,
        "batch task count would exceed the order's target",
    )
    .await;
    assert_eq!(
        response.body,
        json!({
            "error": "batch task count would exceed the order's target",
            "code": "batch_quota_exceeded",
            "target_count": 10,
            "order_task_count": 7,
            "current_batch_task_count": 4,
            "max_batch_target": 7,
            "requested_batch_task_count": 8,
            "remaining_assignable": 3,
        })
    );
    // Exactly up to the target is allowed.
    let response = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(5), s.group_b.entry(2)]}),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(order_task_count(&pool, s.order_id).await, 10);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn reductions_and_no_ops_are_allowed_over_quota(pool: PgPool) {
    // An order already over its target (e.g. the target was lowered).
    let s = Scenario::new(&pool, 100, 6, 2).await;
    sqlx::query("UPDATE orders SET target_count = 3 WHERE id = $1")
        .bind(s.order_id)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    let same = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(6)]}),
    )
    .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    assert_eq!(
        same.body,
        json!({"created_tasks": [], "deleted_task_ids": []})
    );
    // Shrinking one group while growing another, with a net reduction, skips the quota.
    let shrink = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(2), s.group_b.entry(3)]}),
    )
    .await;
    assert_eq!(shrink.status, StatusCode::OK, "{}", shrink.text);
    assert_eq!(order_task_count(&pool, s.order_id).await, 5);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_completed_order_takes_reductions_but_no_insertions(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 4, 0).await;
    sqlx::query("UPDATE orders SET status = 'completed' WHERE id = $1")
        .bind(s.order_id)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    let request = post_request(
        &adjust_path(s.batch_id),
        Some(&admin_token()),
        groups(&[s.group_a.entry(5)]),
    );
    let response = assert_refused(
        &pool,
        &router,
        request,
        StatusCode::CONFLICT,
        "order is completed; cannot add tasks to batch",
    )
    .await;
    assert_eq!(response.body["order_status"], "completed");
    let reduce = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(1)]}),
    )
    .await;
    assert_eq!(reduce.status, StatusCode::OK, "{}", reduce.text);
    assert_eq!(
        reduce.body["deleted_task_ids"].as_array().map(Vec::len),
        Some(3)
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_reduction_that_leaves_every_live_task_terminal_completes_the_batch(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    s.add_tasks(s.batch_id, s.group_b, 2, "completed").await;
    sqlx::query("UPDATE batches SET status = 'active', started_at = now() WHERE id = $1")
        .bind(s.batch_id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE workstations SET status = 'active' WHERE id = $1")
        .bind(s.seat.workstation_id)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    let response = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(0)]}),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(batch_status(&pool, s.batch_id).await, "completed");
    let ended: bool = sqlx::query_scalar("SELECT ended_at IS NOT NULL FROM batches WHERE id = $1")
        .bind(s.batch_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ended);
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "inactive"
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn adjust_statement_count_does_not_grow_with_quantity(pool: PgPool) {
    let small = Scenario::new(&pool, 5_000, 600, 0).await;
    let large = Scenario::new(&pool, 5_000, 600, 0).await;
    let router = router(pool.clone());
    for (grow_small, grow_large) in [(601, 1_100), (599, 100)] {
        let (one, r1) = statements_run_by(
            &pool,
            admin_post(
                &router,
                &adjust_path(small.batch_id),
                json!({"task_groups": [small.group_a.entry(grow_small)]}),
            ),
        )
        .await;
        let (many, r500) = statements_run_by(
            &pool,
            admin_post(
                &router,
                &adjust_path(large.batch_id),
                json!({"task_groups": [large.group_a.entry(grow_large)]}),
            ),
        )
        .await;
        assert_eq!(
            (r1.status, r500.status),
            (StatusCode::OK, StatusCode::OK),
            "{} {}",
            r1.text,
            r500.text
        );
        assert!(one > 4, "the counter sees the request's statements ({one})");
        assert_eq!(one, many, "±1 ran {one} statements, ±500 ran {many}");
    }
}

/// SPEC §5.2: one request inserts at most 10 000 tasks, and no quantity up to 2^63−1, alone or
/// added to others, can overflow, slip past the quota or keep the order locked for long.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn hostile_quantities_are_refused_before_anything_is_inserted(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let router = router(pool.clone());
    let half = 1_i64 << 62;
    let cases = [
        // Group A holds 3 tasks: the request adds the difference.
        (groups(&[s.group_a.entry(i64::MAX)]), i64::MAX - 3),
        // Adds 2^62 + 2^62 = 2^63, one past i64::MAX: it used to wrap negative and skip the
        // quota; now it is reported as the largest number.
        (
            groups(&[s.group_a.entry(half + 3), s.group_b.entry(half)]),
            i64::MAX,
        ),
        (
            groups(&[s.group_a.entry(i64::MAX), s.group_b.entry(i64::MAX)]),
            i64::MAX,
        ),
        (groups(&[s.group_a.entry(3 + 10_001)]), 10_001),
        (
            groups(&[s.group_a.entry(3 + 5_000), s.group_b.entry(5_001)]),
            10_001,
        ),
    ];
    for (body, requested) in cases {
        let before = snapshot(&pool).await;
        let started = std::time::Instant::now();
        let response = admin_post(
            &router,
            &adjust_path(s.batch_id),
            serde_json::from_str(&body).unwrap(),
        )
        .await;
        response.assert_error(
            StatusCode::BAD_REQUEST,
            &format!("one request may add at most 10000 tasks to a batch; {requested} requested"),
        );
        assert_eq!(response.body["requested"], json!(requested), "{body}");
        assert_eq!(response.body["max"], json!(10_000));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{body}"
        );
        assert_eq!(snapshot(&pool).await, before, "{body}: nothing applied");
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn ten_thousand_tasks_in_one_request_are_allowed(pool: PgPool) {
    let s = Scenario::new(&pool, 20_000, 3, 0).await;
    let router = router(pool.clone());
    let response = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(3 + 6_000), s.group_b.entry(4_000)]}),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(
        response.body["created_tasks"].as_array().unwrap().len(),
        10_000
    );
    assert_eq!(order_task_count(&pool, s.order_id).await, 10_003);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_body_with_bytes_that_are_not_utf8_is_refused_wherever_they_sit(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let router = router(pool.clone());
    // The bad bytes sit in a field no handler reads, where the JSON parser skips them.
    let mut body =
        br#"{"task_groups":[{"sop_id":1,"subscene_id":1,"quantity":1}],"note":""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#""}"#);
    let before = snapshot(&pool).await;
    let response = send(
        &router,
        axum::http::Method::POST,
        &adjust_path(s.batch_id),
        Some(&admin_token()),
        &[],
        body.clone(),
    )
    .await;
    response.assert_error(StatusCode::BAD_REQUEST, "invalid request body");
    let mut complete_body = format!(
        r#"{{"quantity":1,"sop_id":{},"subscene_id":{},"x":""#,
        s.group_a.sop_id, s.group_a.subscene_id
    )
    .into_bytes();
    complete_body.extend_from_slice(&[0xc3, 0x28]);
    complete_body.extend_from_slice(br#""}"#);
    let response = send(
        &router,
        axum::http::Method::POST,
        &complete_path(s.batch_id),
        Some(&s.seat.token),
        &[],
        complete_body,
    )
    .await;
    response.assert_error(StatusCode::BAD_REQUEST, "invalid request body");
    assert_eq!(snapshot(&pool).await, before);
}
