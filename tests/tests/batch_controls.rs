//! The admin's batch controls beyond cancel: editing a batch (and Keystone's
//! `{"status":"cancelled"}`), recalling it through the outbox, and deleting one nothing was done
//! in.

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use keystone_tests::notify::*;
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

fn batch_path(batch_id: i64) -> String {
    format!("/api/v1/batches/{batch_id}")
}

fn recall_path(batch_id: i64) -> String {
    format!("/api/v1/batches/{batch_id}/recall")
}

async fn patch(router: &Router, batch_id: i64, body: Value) -> TestResponse {
    send(
        router,
        Method::PATCH,
        &batch_path(batch_id),
        Some(&admin_token()),
        &[],
        body.to_string(),
    )
    .await
}

async fn delete(router: &Router, batch_id: i64) -> TestResponse {
    send(
        router,
        Method::DELETE,
        &batch_path(batch_id),
        Some(&admin_token()),
        &[],
        "",
    )
    .await
}

/// The `(action, reason)` of every message on the queue, sorted; each body is checked against
/// the message schema in `docs/schemas`.
async fn queued_commands(queue: &TestQueue) -> Vec<(String, String)> {
    let schema: Value = serde_json::from_str(include_str!(
        "../../docs/schemas/recorder-command.schema.json"
    ))
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut commands: Vec<(String, String)> = queue
        .drain(&queue.pair.url)
        .await
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert!(validator.is_valid(&body), "off-schema message: {body}");
            (
                body["action"].as_str().unwrap().to_owned(),
                body["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    commands.sort();
    commands
}

async fn ended(pool: &PgPool, batch_id: i64) -> bool {
    sqlx::query_scalar("SELECT ended_at IS NOT NULL FROM batches WHERE id = $1")
        .bind(batch_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn activate(pool: &PgPool, batch_id: i64, workstation_id: i64) {
    set_batch_status(pool, batch_id, "active").await;
    sqlx::query("UPDATE workstations SET status = 'active' WHERE id = $1")
        .bind(workstation_id)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_edit_changes_the_named_fields_in_any_status_and_null_clears(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let router = router(pool.clone());

    let edited = patch(
        &router,
        s.batch_id,
        json!({"name": "  Kitchen, morning shift ", "notes": "Left shelf",
               "metadata": {"shift": "morning"}}),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    assert_eq!(edited.body["cancelled"], json!(false));
    assert_eq!(edited.body["cancelled_task_count"], json!(0));
    assert_eq!(edited.body["notifications_enqueued"], json!(0));
    let batch = &edited.body["batch"];
    assert_eq!(batch["name"], json!("Kitchen, morning shift"));
    assert_eq!(batch["notes"], json!("Left shelf"));
    assert_eq!(batch["metadata"], json!({"shift": "morning"}));
    assert_eq!(batch["status"], json!("pending"));
    assert_eq!(batch["id"], json!(s.batch_id.to_string()));

    // Absent fields stay; null clears notes and metadata; the view agrees.
    let cleared = patch(
        &router,
        s.batch_id,
        json!({"notes": null, "metadata": null}),
    )
    .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    let view = get(&router, &batch_path(s.batch_id), Some(&admin_token())).await;
    assert_eq!(view.body["name"], json!("Kitchen, morning shift"));
    assert_eq!(view.body["notes"], Value::Null);
    assert_eq!(view.body["metadata"], Value::Null);

    // A finished batch may still be renamed; its status and counters stay.
    for status in ["completed", "recalled", "cancelled"] {
        set_batch_status(&pool, s.batch_id, status).await;
        let renamed = patch(&router, s.batch_id, json!({"name": status})).await;
        assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
        assert_eq!(renamed.body["batch"]["status"], json!(status));
        assert_eq!(renamed.body["batch"]["name"], json!(status));
    }
    assert!(counter_drift(&pool).await.is_empty());
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_edit_refuses_statuses_places_and_empty_bodies_and_non_admins(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let router = router(pool.clone());
    let before = snapshot(&pool).await;
    for status in ["recalled", "completed", "active", "pending"] {
        let refused = patch(&router, s.batch_id, json!({"status": status, "name": "x"})).await;
        refused.assert_error(
            StatusCode::BAD_REQUEST,
            keystone_domain::batches::BATCH_STATUS_RULE,
        );
        assert_eq!(refused.body["code"], json!("status_not_patchable"));
    }
    for field in ["order_id", "workstation_id", "organization_id", "batch_id"] {
        let refused = patch(&router, s.batch_id, json!({ field: "2" })).await;
        refused.assert_error(
            StatusCode::BAD_REQUEST,
            &format!("{field} cannot be changed"),
        );
        assert_eq!(refused.body["field"], json!(field));
    }
    let empty = patch(&router, s.batch_id, json!({})).await;
    empty.assert_error(
        StatusCode::BAD_REQUEST,
        "the body changes nothing: send name, notes, metadata or status \"cancelled\"",
    );
    assert_eq!(empty.body["code"], json!("nothing_to_update"));
    patch(&router, s.batch_id, json!({"metadata": [1]}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid request body");
    patch(&router, 999_999, json!({"name": "x"}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "batch not found");
    assert_admin_only(
        &router,
        &s.seat.token,
        &[
            (Method::PATCH, batch_path(s.batch_id)),
            (Method::POST, recall_path(s.batch_id)),
            (Method::DELETE, batch_path(s.batch_id)),
        ],
    )
    .await;
    assert_eq!(
        snapshot(&pool).await,
        before,
        "nothing refused changed anything"
    );
}

/// Keystone's way of cancelling: `{"status":"cancelled"}` does what the cancel endpoint does,
/// with the edit in the same transaction; a batch that cannot be cancelled keeps the edit
/// unmade.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn status_cancelled_cancels_exactly_as_the_cancel_endpoint_with_the_edit(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let (axon, batch) = s
        .add_axon_batch(
            "AX-P",
            "axon-p",
            &[
                ("completed", 1),
                ("ready", 1),
                ("in_progress", 1),
                ("pending", 2),
            ],
        )
        .await;
    activate(&pool, batch, axon.workstation_id).await;
    let queue = TestQueue::create("patch-cancel", 5, 30).await;
    let router = keystone_local::routes()
        .with_state(state(pool.clone()).with_outbox(Arc::new(queue.publisher(&pool))));
    let order_before = order_status(&pool, s.order_id).await;

    let response = patch(
        &router,
        batch,
        json!({"status": "cancelled", "notes": "device broken"}),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["cancelled"], json!(true));
    assert_eq!(response.body["cancelled_task_count"], json!(4));
    assert_eq!(response.body["notifications_enqueued"], json!(2));
    assert_eq!(response.body["batch"]["status"], json!("cancelled"));
    assert_eq!(response.body["batch"]["notes"], json!("device broken"));
    assert_eq!(response.body["batch"]["completed_count"], json!(1));
    assert!(ended(&pool, batch).await);
    assert_eq!(
        workstation_status(&pool, axon.workstation_id).await,
        "inactive"
    );
    assert_eq!(order_status(&pool, s.order_id).await, order_before);
    assert_eq!(
        queued_commands(&queue).await,
        [
            ("cancel".to_owned(), "batch_cancelled".to_owned()),
            ("clear".to_owned(), "batch_cancelled".to_owned())
        ]
    );

    // Again: already cancelled, the edit alone applies.
    let again = patch(
        &router,
        batch,
        json!({"status": "cancelled", "name": "gone"}),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["cancelled"], json!(false));
    assert_eq!(again.body["batch"]["name"], json!("gone"));

    // A completed batch cannot be cancelled: 409, and the edit in the same body is not made.
    set_batch_status(&pool, s.batch_id, "completed").await;
    let before = snapshot(&pool).await;
    let refused = patch(
        &router,
        s.batch_id,
        json!({"status": "cancelled", "name": "renamed"}),
    )
    .await;
    refused.assert_error(
        StatusCode::CONFLICT,
        "batch is completed; only pending or active batches can be cancelled",
    );
    assert_eq!(refused.body["current_status"], json!("completed"));
    assert_eq!(snapshot(&pool).await, before);
    assert!(counter_drift(&pool).await.is_empty());
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn recalling_cancels_the_open_work_tells_the_recorders_and_keeps_completions(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let (axon, batch) = s
        .add_axon_batch(
            "AX-R",
            "axon-r",
            &[
                ("completed", 2),
                ("ready", 1),
                ("in_progress", 1),
                ("pending", 3),
            ],
        )
        .await;
    activate(&pool, batch, axon.workstation_id).await;
    set_order_status(&pool, s.order_id, "in_progress").await;
    let queue = TestQueue::create("recall", 5, 30).await;
    let router = keystone_local::routes()
        .with_state(state(pool.clone()).with_outbox(Arc::new(queue.publisher(&pool))));
    let order_before = get(
        &router,
        &format!("/api/v1/orders/{}", s.order_id),
        Some(&admin_token()),
    )
    .await;

    let response = admin_post(&router, &recall_path(batch), json!({})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["recalled"], json!(true));
    assert_eq!(response.body["cancelled_task_count"], json!(5));
    assert_eq!(response.body["notifications_enqueued"], json!(2));
    assert_eq!(response.body["batch"]["status"], json!("recalled"));
    assert_eq!(response.body["batch"]["completed_count"], json!(2));
    assert_eq!(response.body["batch"]["task_count"], json!(7));
    assert!(ended(&pool, batch).await);
    assert_eq!(
        live_counts(&pool, batch).await,
        [("cancelled".to_owned(), 5), ("completed".to_owned(), 2)]
    );
    assert_eq!(
        workstation_status(&pool, axon.workstation_id).await,
        "inactive"
    );
    // The order does not move back: its status and completed count stay.
    let order_after = get(
        &router,
        &format!("/api/v1/orders/{}", s.order_id),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(order_after.body["status"], json!("in_progress"));
    assert_eq!(
        order_after.body["completed_count"],
        order_before.body["completed_count"]
    );
    assert_eq!(order_after.body["batch_counts"]["recalled"], json!(1));
    assert_eq!(
        queued_commands(&queue).await,
        [
            ("cancel".to_owned(), "batch_recalled".to_owned()),
            ("clear".to_owned(), "batch_recalled".to_owned())
        ]
    );

    // Again: already recalled, nothing changes.
    let before = snapshot(&pool).await;
    let again = admin_post(&router, &recall_path(batch), json!({})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["recalled"], json!(false));
    assert_eq!(again.body["cancelled_task_count"], json!(0));
    assert_eq!(again.body["notifications_enqueued"], json!(0));
    assert_eq!(snapshot(&pool).await, before);

    // A completed batch is recalled too: nothing runnable is left to cancel.
    set_batch_status(&pool, s.batch_id, "completed").await;
    let finished = admin_post(&router, &recall_path(s.batch_id), json!({})).await;
    assert_eq!(finished.status, StatusCode::OK, "{}", finished.text);
    assert_eq!(finished.body["recalled"], json!(true));
    assert_eq!(finished.body["cancelled_task_count"], json!(0));
    assert!(counter_drift(&pool).await.is_empty());
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn only_active_or_completed_batches_are_recalled(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let router = router(pool.clone());
    admin_post(&router, &recall_path(999_999), json!({}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "batch not found");
    for status in ["pending", "cancelled"] {
        set_batch_status(&pool, s.batch_id, status).await;
        let before = snapshot(&pool).await;
        let refused = admin_post(&router, &recall_path(s.batch_id), json!({})).await;
        refused.assert_error(
            StatusCode::CONFLICT,
            &format!("batch is {status}; only active or completed batches can be recalled"),
        );
        assert_eq!(refused.body["current_status"], json!(status));
        assert_eq!(refused.body["code"], json!("batch_not_recallable"));
        assert_eq!(snapshot(&pool).await, before);
    }
}

/// Deleting a pending batch takes its tasks off the order (which may take them again), tells a
/// device recording one of them, and frees the order itself for deletion.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn deleting_a_batch_takes_its_tasks_off_the_order(pool: PgPool) {
    let s = Scenario::new(&pool, 12, 2, 1).await;
    let (_axon, batch) = s
        .add_axon_batch("AX-D", "axon-d", &[("ready", 1), ("pending", 4)])
        .await;
    let queue = TestQueue::create("delete", 5, 30).await;
    let router = keystone_local::routes()
        .with_state(state(pool.clone()).with_outbox(Arc::new(queue.publisher(&pool))));
    assert_eq!(order_task_count(&pool, s.order_id).await, 8);

    let deleted = delete(&router, batch).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_eq!(order_task_count(&pool, s.order_id).await, 3);
    assert!(counter_drift(&pool).await.is_empty());
    assert_eq!(
        queued_commands(&queue).await,
        [("clear".to_owned(), "batch_cancelled".to_owned())]
    );
    get(&router, &batch_path(batch), Some(&admin_token()))
        .await
        .assert_error(StatusCode::NOT_FOUND, "batch not found");
    let listed = get(
        &router,
        &format!("/api/v1/batches?order_id={}", s.order_id),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(listed.body["total"], json!(1), "{}", listed.text);
    delete(&router, batch)
        .await
        .assert_error(StatusCode::NOT_FOUND, "batch not found");

    // The order may take those tasks again: 12 target, 3 live.
    let created = admin_post(
        &router,
        "/api/v1/batches",
        json!({"order_id": s.order_id, "workstation_id": s.seat.workstation_id,
               "task_groups": [s.group_a.body(9)]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);

    // A cancelled batch without completions goes too; then the order has none and goes.
    let new_batch: i64 = created.body["batch"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for id in [new_batch, s.batch_id] {
        assert_eq!(
            admin_post(&router, &format!("/api/v1/batches/{id}/cancel"), json!({}))
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(delete(&router, id).await.status, StatusCode::NO_CONTENT);
    }
    let order_gone = send(
        &router,
        Method::DELETE,
        &format!("/api/v1/orders/{}", s.order_id),
        Some(&admin_token()),
        &[],
        "",
    )
    .await;
    assert_eq!(
        order_gone.status,
        StatusCode::NO_CONTENT,
        "{}",
        order_gone.text
    );
    assert!(counter_drift(&pool).await.is_empty());
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_batch_with_work_done_or_running_is_not_deleted(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let router = router(pool.clone());
    s.add_tasks(s.batch_id, s.group_b, 1, "completed").await;
    for (status, completed) in [
        ("active", 1),
        ("completed", 1),
        ("recalled", 1),
        ("cancelled", 1),
        ("pending", 1),
    ] {
        set_batch_status(&pool, s.batch_id, status).await;
        let before = snapshot(&pool).await;
        let refused = delete(&router, s.batch_id).await;
        refused.assert_error(
            StatusCode::CONFLICT,
            &format!(
                "batch is {status} with {completed} completed tasks; only a pending or \
                 cancelled batch without completed tasks can be deleted"
            ),
        );
        assert_eq!(refused.body["current_status"], json!(status));
        assert_eq!(refused.body["completed_count"], json!(completed));
        assert_eq!(snapshot(&pool).await, before);
    }
    // Without completions, only pending and cancelled batches go.
    let other = s.add_batch(s.order_id, s.seat.workstation_id).await;
    s.add_tasks(other, s.group_a, 2, "pending").await;
    set_batch_status(&pool, other, "active").await;
    let refused = delete(&router, other).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.body["code"], json!("batch_not_deletable"));
}

/// A recall racing the batch's last completion: the lock order serializes them, so exactly one
/// outcome holds and nothing deadlocks.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_recall_racing_a_completion_never_deadlocks(pool: PgPool) {
    for round in 0..6 {
        let s = Scenario::new(&pool, 100, 2, 0).await;
        set_batch_status(&pool, s.batch_id, "active").await;
        let router = router(pool.clone());
        let (r1, token, body) = (router.clone(), s.seat.token.clone(), s.group_a.body(1));
        let completing =
            tokio::spawn(async move { complete(&r1, &token, s.batch_id, body, &[]).await });
        let r2 = router.clone();
        let recalling =
            tokio::spawn(async move { admin_post(&r2, &recall_path(s.batch_id), json!({})).await });
        let (completed, recalled) = (completing.await.unwrap(), recalling.await.unwrap());
        assert_eq!(
            recalled.status,
            StatusCode::OK,
            "round {round}: {}",
            recalled.text
        );
        assert_eq!(batch_status(&pool, s.batch_id).await, "recalled");
        let counts = live_counts(&pool, s.batch_id).await;
        match completed.status.as_u16() {
            200 => assert_eq!(
                counts,
                [("cancelled".to_owned(), 1), ("completed".to_owned(), 1)],
                "round {round}"
            ),
            409 => assert_eq!(counts, [("cancelled".to_owned(), 2)], "round {round}"),
            other => panic!("round {round}: {other} {}", completed.text),
        }
    }
    assert!(counter_drift(&pool).await.is_empty());
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn batch_controls_run_the_same_statements_whatever_the_batch_size(pool: PgPool) {
    let s = Scenario::new(&pool, 10_000, 1, 0).await;
    let router = router(pool.clone());
    let mut counts: Vec<(&str, i64, i64)> = Vec::new();
    for (i, tasks) in [2_i64, 300].into_iter().enumerate() {
        let batch_of = |tag: &'static str| {
            let s = s.clone();
            async move {
                let seat = s
                    .add_seat(
                        &format!("AX-{tag}{i}"),
                        None,
                        Some(&format!("axon-{tag}{i}")),
                    )
                    .await;
                let batch = s.add_batch(s.order_id, seat.workstation_id).await;
                s.add_tasks(batch, s.group_b, tasks, "ready").await;
                batch
            }
        };
        let recall = batch_of("R").await;
        set_batch_status(&pool, recall, "active").await;
        let (recall_statements, recalled) =
            statements_run_by(&pool, admin_post(&router, &recall_path(recall), json!({}))).await;
        assert_eq!(
            recalled.body["notifications_enqueued"],
            json!(tasks),
            "{}",
            recalled.text
        );

        let cancel = batch_of("C").await;
        let (patch_statements, patched) = statements_run_by(
            &pool,
            patch(
                &router,
                cancel,
                json!({"status": "cancelled", "name": "pulled"}),
            ),
        )
        .await;
        assert_eq!(
            patched.body["notifications_enqueued"],
            json!(tasks),
            "{}",
            patched.text
        );

        let doomed = batch_of("D").await;
        let (delete_statements, deleted) = statements_run_by(&pool, delete(&router, doomed)).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
        counts.push(("recall", tasks, recall_statements));
        counts.push(("patch", tasks, patch_statements));
        counts.push(("delete", tasks, delete_statements));
    }
    for kind in ["recall", "patch", "delete"] {
        let per_size: Vec<i64> = counts
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, _, n)| *n)
            .collect();
        assert_eq!(per_size[0], per_size[1], "{kind}: {counts:?}");
    }
    assert!(counter_drift(&pool).await.is_empty());
}
