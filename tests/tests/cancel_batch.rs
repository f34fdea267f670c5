//! SPEC §5.11: cancelling a batch pulls its runnable work back from the workstation, tells the
//! Axon recorders, and leaves completed work and the order alone.

use std::sync::Arc;

use axum::http::StatusCode;
use keystone_tests::notify::*;
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

fn cancel_path(batch_id: i64) -> String {
    format!("/api/v1/batches/{batch_id}/cancel")
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn cancelling_a_batch_cascades_and_tells_the_recorders_once(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let (axon, batch) = s
        .add_axon_batch(
            "AX-C",
            "axon-c",
            &[
                ("completed", 1),
                ("ready", 1),
                ("in_progress", 1),
                ("pending", 2),
            ],
        )
        .await;
    set_batch_status(&pool, batch, "active").await;
    sqlx::query("UPDATE workstations SET status = 'active' WHERE id = $1")
        .bind(axon.workstation_id)
        .execute(&pool)
        .await
        .unwrap();
    let queue = TestQueue::create("cancel", 5, 30).await;
    let router = keystone_local::routes()
        .with_state(state(pool.clone()).with_outbox(Arc::new(queue.publisher(&pool))));
    let order_before = order_status(&pool, s.order_id).await;

    let response = admin_post(&router, &cancel_path(batch), json!({})).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["cancelled"], json!(true));
    assert_eq!(response.body["cancelled_task_count"], json!(4));
    assert_eq!(response.body["notifications_enqueued"], json!(2));
    assert_eq!(response.body["batch"]["status"], json!("cancelled"));
    assert_eq!(response.body["batch"]["completed_count"], json!(1));
    assert_eq!(response.body["batch"]["task_count"], json!(5));
    assert_eq!(
        live_counts(&pool, batch).await,
        [("cancelled".to_owned(), 4), ("completed".to_owned(), 1)]
    );
    assert_eq!(batch_status(&pool, batch).await, "cancelled");
    let ended: bool = sqlx::query_scalar("SELECT ended_at IS NOT NULL FROM batches WHERE id = $1")
        .bind(batch)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ended);
    assert_eq!(
        workstation_status(&pool, axon.workstation_id).await,
        "inactive"
    );
    assert_eq!(
        order_status(&pool, s.order_id).await,
        order_before,
        "the order is not advanced"
    );
    assert_eq!(
        batch_status(&pool, s.batch_id).await,
        "pending",
        "other batches untouched"
    );

    // One clear and one cancel, with reason batch_cancelled, delivered once each.
    let messages = queue.drain(&queue.pair.url).await;
    let mut actions: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            (
                body["action"].as_str().unwrap().to_owned(),
                body["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            ("cancel".to_owned(), "batch_cancelled".to_owned()),
            ("clear".to_owned(), "batch_cancelled".to_owned())
        ]
    );
    let recorder = FakeRecorder::start().await;
    assert_eq!(
        recorder.deliver_twice(&pool, &messages).await,
        2,
        "each device command delivered once"
    );

    // Again: already cancelled, nothing changes.
    let before = snapshot(&pool).await;
    let again = admin_post(&router, &cancel_path(batch), json!({})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["cancelled"], json!(false));
    assert_eq!(again.body["cancelled_task_count"], json!(0));
    assert_eq!(again.body["notifications_enqueued"], json!(0));
    assert_eq!(snapshot(&pool).await, before);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn only_open_batches_can_be_cancelled_and_only_by_admins(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let router = router(pool.clone());
    send(
        &router,
        axum::http::Method::POST,
        &cancel_path(s.batch_id),
        Some(&s.seat.token),
        &[],
        "",
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "admin role required");
    admin_post(&router, &cancel_path(999_999), json!({}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "batch not found");
    for status in ["completed", "recalled"] {
        set_batch_status(&pool, s.batch_id, status).await;
        let before = snapshot(&pool).await;
        let response = admin_post(&router, &cancel_path(s.batch_id), json!({})).await;
        response.assert_error(
            StatusCode::CONFLICT,
            &format!("batch is {status}; only pending or active batches can be cancelled"),
        );
        assert_eq!(response.body["current_status"], json!(status));
        assert_eq!(snapshot(&pool).await, before);
    }
}

/// Cancelling a batch while its last task is being completed: the lock order serializes them,
/// so either the completion lands first (and the batch is completed, 409) or the cancel does
/// (and the completion is refused, 409) — never both, never a deadlock.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_cancel_racing_the_last_completion_lets_exactly_one_win(pool: PgPool) {
    for round in 0..8 {
        let s = Scenario::new(&pool, 100, 1, 0).await;
        let router = router(pool.clone());
        let (r1, token, body) = (router.clone(), s.seat.token.clone(), s.group_a.body(1));
        let completing =
            tokio::spawn(async move { complete(&r1, &token, s.batch_id, body, &[]).await });
        let r2 = router.clone();
        let cancelling =
            tokio::spawn(async move { admin_post(&r2, &cancel_path(s.batch_id), json!({})).await });
        let (completed, cancelled) = (completing.await.unwrap(), cancelling.await.unwrap());
        let statuses = (completed.status.as_u16(), cancelled.status.as_u16());
        match statuses {
            (200, 409) => assert_eq!(batch_status(&pool, s.batch_id).await, "completed"),
            (409, 200) => {
                assert_eq!(batch_status(&pool, s.batch_id).await, "cancelled");
                assert_eq!(
                    live_counts(&pool, s.batch_id).await,
                    [("cancelled".to_owned(), 1)]
                );
            }
            other => panic!(
                "round {round}: {other:?}\n{}\n{}",
                completed.text, cancelled.text
            ),
        }
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn cancelling_runs_the_same_statements_whatever_the_batch_size(pool: PgPool) {
    let s = Scenario::new(&pool, 1_000, 1, 0).await;
    let router = router(pool.clone());
    let mut counts = Vec::new();
    for (i, tasks) in [2_i64, 200].into_iter().enumerate() {
        let seat = s
            .add_seat(&format!("AX-S{i}"), None, Some(&format!("axon-s{i}")))
            .await;
        let batch = s.add_batch(s.order_id, seat.workstation_id).await;
        s.add_tasks(batch, s.group_b, tasks, "ready").await;
        let (statements, response) =
            statements_run_by(&pool, admin_post(&router, &cancel_path(batch), json!({}))).await;
        assert_eq!(
            response.body["notifications_enqueued"],
            json!(tasks),
            "{}",
            response.text
        );
        counts.push(statements);
    }
    assert_eq!(counts[0], counts[1], "{counts:?}");
}
