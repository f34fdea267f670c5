//! Issue 11: a request's cost does not grow with its order. The progress counters stay exact
//! whatever writes the task rows, a completion locks only what it may change, no request path
//! reads `tasks` sequentially, and every endpoint runs the same statements on a big order as on
//! a small one.

use std::time::Duration;

use axum::http::StatusCode;
use keystone_store::TransactionLimits;
use keystone_tests::*;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_counters_follow_every_kind_of_write_to_tasks(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 6, 3).await;
    let other = s.add_batch(s.order_id, s.seat.workstation_id).await;
    s.add_tasks(other, s.group_b, 4, "ready").await;
    assert_eq!(counter_drift(&pool).await, Vec::<String>::new());
    let before: (i64, i64) =
        sqlx::query_as("SELECT task_count, completed_count FROM orders WHERE id = $1")
            .bind(s.order_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(before, (13, 0), "inserts are counted");

    // What an operator might run by hand: each statement keeps every counter exact.
    for sql in [
        "UPDATE tasks SET status = 'completed' WHERE id IN (SELECT id FROM tasks ORDER BY id LIMIT 2)",
        "UPDATE tasks SET status = 'failed' WHERE id = (SELECT max(id) FROM tasks)",
        "UPDATE tasks SET deleted_at = now() WHERE id = (SELECT min(id) FROM tasks WHERE status = 'pending')",
        "UPDATE tasks SET deleted_at = NULL WHERE deleted_at IS NOT NULL",
        "UPDATE tasks SET episode_id = 9 WHERE status = 'completed'",
        "UPDATE tasks SET sop_id = (SELECT max(sop_id) FROM tasks) WHERE id = (SELECT min(id) FROM tasks)",
        "DELETE FROM tasks WHERE id = (SELECT max(id) FROM tasks WHERE status = 'ready')",
    ] {
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        assert_eq!(counter_drift(&pool).await, Vec::<String>::new(), "{sql}");
    }
    // Moving tasks to another batch of another order.
    let second = Scenario::new(&pool, 50, 1, 0).await;
    sqlx::query(
        "UPDATE tasks SET batch_id = $1, order_id = $2 \
         WHERE id IN (SELECT id FROM tasks WHERE batch_id = $3 ORDER BY id LIMIT 3)",
    )
    .bind(second.batch_id)
    .bind(second.order_id)
    .bind(s.batch_id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(counter_drift(&pool).await, Vec::<String>::new());
    // A batch an operator removes for good takes its group counters with it.
    let doomed = s.add_batch(s.order_id, s.seat.workstation_id).await;
    s.add_tasks(doomed, s.group_a, 2, "pending").await;
    sqlx::query("DELETE FROM tasks WHERE batch_id = $1")
        .bind(doomed)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM batches WHERE id = $1")
        .bind(doomed)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(counter_drift(&pool).await, Vec::<String>::new());

    // And every endpoint that writes tasks.
    let router = router(pool.clone());
    let ok = |r: &TestResponse| assert!(r.status.is_success(), "{}", r.text);
    ok(&complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]).await);
    ok(&send(
        &router,
        axum::http::Method::POST,
        &reopen_path(s.batch_id),
        Some(&admin_token()),
        &[],
        s.group_a.body(1).to_string(),
    )
    .await);
    ok(&admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(5)]}),
    )
    .await);
    ok(&admin_post(
        &router,
        "/api/v1/batches",
        json!({"order_id": s.order_id,
        "workstation_id": s.seat.workstation_id, "task_groups": [s.group_b.entry(2)]}),
    )
    .await);
    ok(&admin_post(
        &router,
        &format!("/api/v1/batches/{other}/cancel"),
        json!({}),
    )
    .await);
    ok(&admin_post(&router, &finalize_path(s.order_id), json!({})).await);
    ok(&admin_post(
        &router,
        &order_control_path(second.order_id, "cancel"),
        json!({}),
    )
    .await);
    assert_eq!(counter_drift(&pool).await, Vec::<String>::new());
}

/// A completion that cannot reach its order's target locks its batch and no other: another
/// batch of the order held by someone else does not make it wait. One that can reach the
/// target must lock every open batch (finalization changes them), so it does wait.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_completion_locks_the_other_batches_only_when_it_may_finalize(pool: PgPool) {
    let s = Scenario::new(&pool, 4, 4, 0).await;
    let other_seat = s
        .add_seat(
            "DC-OTHER",
            Some(json!({"requires_axon": false})),
            Some("ext-other"),
        )
        .await;
    let other = s.add_batch(s.order_id, other_seat.workstation_id).await;
    s.add_tasks(other, s.group_a, 1, "pending").await;
    let limits = TransactionLimits {
        lock_timeout: Duration::from_millis(300),
        ..TransactionLimits::default()
    };
    let router = router_with(app_db_with_limits(&pool, limits).await);

    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM batches WHERE id = $1 FOR UPDATE")
        .bind(other)
        .execute(&mut *holder)
        .await
        .unwrap();
    // 2 of 4: cannot finish the order, so the held batch does not matter.
    let partial = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]).await;
    assert_eq!(partial.status, StatusCode::OK, "{}", partial.text);
    // 2 + 2 reaches 4: it needs the held batch, and times out waiting for it.
    complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[])
        .await
        .assert_retryable(
            "timed out waiting for a lock held by another request; retry the request",
        );
    holder.rollback().await.unwrap();
    let finishing = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]).await;
    assert_eq!(finishing.status, StatusCode::OK, "{}", finishing.text);
    assert_eq!(finishing.body["order"]["status"], json!("completed"));
    assert_eq!(
        batch_status(&pool, other).await,
        "completed",
        "finalized with the rest"
    );
}

/// With enough rows that the planner has a choice, no request path scans `tasks`
/// sequentially: every statement finds its rows through an index.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn no_request_path_reads_tasks_sequentially(pool: PgPool) {
    let s = Scenario::new(&pool, 100_000, 2_000, 2_000).await;
    for n in 0..20 {
        let seat = s
            .add_seat(
                &format!("DC-F{n}"),
                Some(json!({"requires_axon": false})),
                Some(&format!("f-{n}")),
            )
            .await;
        let batch = s.add_batch(s.order_id, seat.workstation_id).await;
        s.add_tasks(batch, s.group_a, 1_000, "pending").await;
    }
    let (_axon, axon_batch) = s.add_axon_batch("AX-F", "axon-f", &[("ready", 500)]).await;
    let small = Scenario::new(&pool, 10, 5, 0).await;
    // The orders of a whole factory around them: no order is most of the table.
    for _ in 0..8 {
        let other = Scenario::new(&pool, 20_000, 0, 0).await;
        other
            .add_tasks(other.batch_id, other.group_a, 10_000, "completed")
            .await;
        other
            .add_tasks(other.batch_id, other.group_b, 5_000, "pending")
            .await;
    }
    sqlx::raw_sql("ANALYZE").execute(&pool).await.unwrap();
    sqlx::raw_sql("SELECT pg_stat_reset()")
        .execute(&pool)
        .await
        .unwrap();

    let router = router(pool.clone());
    let admin = admin_token();
    let mut answers = Vec::new();
    answers.push(complete(&router, &s.seat.token, s.batch_id, s.group_a.body(3), &[]).await);
    answers.push(complete(&router, &s.seat.token, s.batch_id, s.group_b.body(1), &[]).await);
    answers.push(
        send(
            &router,
            axum::http::Method::POST,
            &reopen_path(s.batch_id),
            Some(&admin),
            &[],
            s.group_a.body(2).to_string(),
        )
        .await,
    );
    answers.push(
        admin_post(
            &router,
            &adjust_path(s.batch_id),
            json!({"task_groups": [s.group_a.entry(1_990)]}),
        )
        .await,
    );
    answers.push(
        admin_post(
            &router,
            &adjust_path(s.batch_id),
            json!({"task_groups": [s.group_a.entry(2_010)]}),
        )
        .await,
    );
    answers.push(
        admin_post(
            &router,
            "/api/v1/batches",
            json!({"order_id": s.order_id,
        "workstation_id": s.seat.workstation_id, "task_groups": [s.group_b.entry(3)]}),
        )
        .await,
    );
    answers.push(
        get(
            &router,
            &format!("/api/v1/orders/{}", s.order_id),
            Some(&admin),
        )
        .await,
    );
    answers.push(
        get(
            &router,
            &format!("/api/v1/batches/{}", s.batch_id),
            Some(&admin),
        )
        .await,
    );
    answers.push(get(&router, "/api/v1/me/batches", Some(&s.seat.token)).await);
    answers.push(get(&router, "/api/v1/auth/me", Some(&s.seat.token)).await);
    answers.push(
        get(
            &router,
            &format!("/api/v1/orders/{}/notifications", s.order_id),
            Some(&admin),
        )
        .await,
    );
    answers.push(
        admin_post(
            &router,
            &format!("/api/v1/batches/{axon_batch}/cancel"),
            json!({}),
        )
        .await,
    );
    answers.push(admin_post(&router, &order_control_path(s.order_id, "pause"), json!({})).await);
    answers.push(
        admin_post(
            &router,
            &order_control_path(s.order_id, "resume"),
            json!({}),
        )
        .await,
    );
    answers.push(retarget(&router, s.order_id, json!(90_000)).await);
    answers.push(admin_post(&router, &finalize_path(s.order_id), json!({})).await);
    answers.push(
        complete(
            &router,
            &small.seat.token,
            small.batch_id,
            small.group_a.body(1),
            &[],
        )
        .await,
    );
    answers.push(
        admin_post(
            &router,
            &order_control_path(small.order_id, "cancel"),
            json!({}),
        )
        .await,
    );
    for answer in &answers {
        assert!(answer.status.is_success(), "{}", answer.text);
    }
    // Backends publish their statistics when they go idle (at most a second later).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let scans: (i64, i64) = sqlx::query_as(
        "SELECT seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname = 'tasks'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(scans.1 > 0, "the statistics saw the requests: {scans:?}");
    assert_eq!(scans.0, 0, "sequential scans of tasks: {scans:?}");
}

/// SPEC §6 and issue 11: statements per request do not depend on how big the order is, for
/// the endpoints whose tests elsewhere compare only quantities.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn reads_and_finalization_run_the_same_statements_on_big_and_small_orders(pool: PgPool) {
    let small = Scenario::new(&pool, 10, 5, 0).await;
    let big = Scenario::new(&pool, 50_000, 3_000, 0).await;
    for _ in 0..10 {
        let batch = big.add_batch(big.order_id, big.seat.workstation_id).await;
        big.add_tasks(batch, big.group_a, 100, "pending").await;
        big.add_tasks(batch, big.group_b, 100, "completed").await;
    }
    let router = router(pool.clone());
    let admin = admin_token();
    let mut counts = Vec::new();
    for s in [&small, &big] {
        let mut row = Vec::new();
        for path in [
            format!("/api/v1/orders/{}", s.order_id),
            format!("/api/v1/batches/{}", s.batch_id),
        ] {
            let (n, r) = statements_run_by(&pool, get(&router, &path, Some(&admin))).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            row.push(n);
        }
        let (n, r) = statements_run_by(
            &pool,
            get(&router, "/api/v1/me/batches", Some(&s.seat.token)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        row.push(n);
        let (n, r) = statements_run_by(
            &pool,
            admin_post(&router, &finalize_path(s.order_id), json!({})),
        )
        .await;
        assert_eq!(r.body["finalized"], json!(true), "{}", r.text);
        row.push(n);
        counts.push(row);
    }
    assert_eq!(
        counts[0], counts[1],
        "get-order, get-batch, my-batches, finalize: {counts:?}"
    );
}
