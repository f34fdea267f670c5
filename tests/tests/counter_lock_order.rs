//! SPEC §6: every lock a trigger takes follows the global order. The progress counters are
//! kept by triggers on `tasks`; a process outside the API that moves task statuses with plain
//! SQL (as the device side does: ready, in_progress, uploading, completed) must never deadlock
//! with the API's writers, and the counters must stay exact.

use std::time::Duration;

use axum::http::StatusCode;
use keystone_tests::*;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The statuses a device walks a task through.
const DEVICE_STEPS: [&str; 4] = ["ready", "in_progress", "uploading", "completed"];

/// What a device-side writer met.
#[derive(Debug, Default)]
struct DeviceRun {
    moves: usize,
    refused_at_once: usize,
    deadlocks: Vec<String>,
}

/// Walks every task through [`DEVICE_STEPS`], one single-statement transaction per move, with
/// plain `UPDATE tasks` or with `keystone_move_tasks`; a move refused because the API holds
/// the order (55P03, at once) is retried.
async fn device(pool: PgPool, tasks: Vec<i64>, through_function: bool) -> DeviceRun {
    let mut run = DeviceRun::default();
    for step in DEVICE_STEPS {
        for &task in &tasks {
            loop {
                let result = if through_function {
                    sqlx::query("SELECT keystone_move_tasks(ARRAY[$1]::bigint[], $2)")
                        .bind(task)
                        .bind(step)
                        .execute(&pool)
                        .await
                } else {
                    sqlx::query(
                        "UPDATE tasks SET status = $2, updated_at = now() \
                         WHERE id = $1 AND status NOT IN ('completed', 'cancelled', 'failed')",
                    )
                    .bind(task)
                    .bind(step)
                    .execute(&pool)
                    .await
                };
                match result {
                    Ok(_) => run.moves += 1,
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                        run.refused_at_once += 1;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    Err(e) => run.deadlocks.push(e.to_string()),
                }
                break;
            }
        }
    }
    run
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn device_side_sql_writers_and_the_api_never_deadlock_and_counters_stay_exact(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = PgPoolOptions::new()
        .max_connections(40)
        .connect_with(connect)
        .await
        .unwrap();
    let router = router(pool.clone());
    let mut api = Vec::new();
    let mut devices = Vec::new();
    // Several orders at once: each is completed one task at a time by its collector, and the
    // last completion finalizes it, cancelling the runnable tasks the device is moving.
    for order in 0..8 {
        let s = Scenario::new(&pool, 12, 12, 0).await;
        let device_tasks = s.add_tasks(s.batch_id, s.group_b, 24, "pending").await;
        devices.push(tokio::spawn(device(
            pool.clone(),
            device_tasks,
            order % 2 == 1,
        )));
        let router = router.clone();
        api.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..12 {
                let answer =
                    complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
                statuses.push((answer.status, answer.text));
            }
            statuses
        }));
    }
    let mut refused_at_once = 0;
    for run in devices {
        let run = run.await.unwrap();
        assert!(
            run.deadlocks.is_empty(),
            "a device writer failed: {:?}",
            run.deadlocks
        );
        assert!(run.moves > 0);
        refused_at_once += run.refused_at_once;
    }
    for statuses in api {
        for (status, text) in statuses.await.unwrap() {
            assert_eq!(status, StatusCode::OK, "{text}");
        }
    }
    assert_eq!(counter_drift(&pool).await, Vec::<String>::new());
    let completed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(completed, 8);
    println!("device moves refused at once and retried: {refused_at_once}");
}

/// A statement that moves tasks between statuses no batch counter names changes no order or
/// batch row, and `TRUNCATE tasks` leaves every counter at zero.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn zero_deltas_write_nothing_and_truncate_zeroes_the_counters(pool: PgPool) {
    let s = Scenario::new(&pool, 12, 3, 2).await;
    let tasks = s.add_tasks(s.batch_id, s.group_b, 2, "ready").await;
    let versions = "SELECT (SELECT xmin::text FROM orders WHERE id = $1) || '/' || \
                    (SELECT xmin::text FROM batches WHERE id = $2)";
    let before: String = sqlx::query_scalar(versions)
        .bind(s.order_id)
        .bind(s.batch_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE tasks SET status = 'in_progress' WHERE id = ANY($1)")
        .bind(&tasks)
        .execute(&pool)
        .await
        .unwrap();
    let after: String = sqlx::query_scalar(versions)
        .bind(s.order_id)
        .bind(s.batch_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(before, after, "the order or batch row was rewritten");
    assert_eq!(counter_drift(&pool).await, Vec::<String>::new());

    sqlx::query("TRUNCATE tasks CASCADE")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(counter_drift(&pool).await, Vec::<String>::new());
    let counted: i64 = sqlx::query_scalar(
        "SELECT ((SELECT sum(task_count) FROM orders) + (SELECT sum(task_count) FROM batches) \
              + (SELECT count(*) FROM task_group_counts))::bigint",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counted, 0);
}

/// How many plans this session keeps for statements whose text contains `fragment`. A plan
/// made for one call's values (a custom plan) is dropped after that call; a generic plan stays.
async fn cached_plans(session: &mut sqlx::PgConnection, fragment: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_backend_memory_contexts \
         WHERE name = 'CachedPlan' AND strpos(ident, $1) > 0",
    )
    .bind(fragment)
    .fetch_one(session)
    .await
    .unwrap()
}

/// The counters' statements are planned once per server session, not on every call: each
/// completion runs them in its trigger, and planning them for each call's arrays cost about
/// 0.35 ms of PostgreSQL's CPU per completion (`docs/performance.md`). After the first call in
/// a new session, every statement of `keystone_add_task_counts` has a cached generic plan (a
/// plan made for one call's values is dropped after that call).
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_counter_statements_keep_one_plan_per_session(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    use sqlx::Connection;

    let pool = options.connect_with(connect.clone()).await.unwrap();
    let s = Scenario::new(&pool, 12, 3, 2).await;
    let tasks = s.add_tasks(s.batch_id, s.group_b, 3, "pending").await;
    // A session of its own: the pool's have run the function already.
    let mut session = sqlx::PgConnection::connect_with(&connect).await.unwrap();
    let statements = [
        "SELECT id FROM orders WHERE id = ANY (order_ids)",
        "SELECT id FROM batches WHERE id = ANY (batch_ids)",
        "UPDATE orders o SET task_count",
        "UPDATE batches b SET task_count",
        "INSERT INTO task_group_counts",
    ];
    for fragment in statements {
        let before = cached_plans(&mut session, fragment).await;
        assert_eq!(before, 0, "{fragment}: planned before the first call");
    }
    for &task in &tasks {
        sqlx::query("UPDATE tasks SET status = 'completed', completed_at = now() WHERE id = $1")
            .bind(task)
            .execute(&mut session)
            .await
            .unwrap();
        for fragment in statements {
            let plans = cached_plans(&mut session, fragment).await;
            assert_eq!(
                plans, 1,
                "{fragment}: no plan kept for the session, or more than one"
            );
        }
    }
    assert_eq!(counter_drift(&pool).await, Vec::<String>::new());
}

/// The completion statement is planned once per server session too (it runs in
/// `keystone_complete_pending_tasks`): sent as a statement, PostgreSQL planned it again on
/// every call, named or not, because its generic plan's estimate for `LIMIT quantity` always
/// looked dearer (0.30 ms per completion, `docs/performance.md`).
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_completion_keeps_one_plan_for_its_statement(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = options.connect_with(connect).await.unwrap();
    let s = Scenario::new(&pool, 12, 3, 2).await;
    // The API's pool holds one server session, so the plans its completions leave are the
    // ones read here.
    let app_pool = PgPoolOptions::new().max_connections(1).connect_lazy_with(
        (*pool.connect_options())
            .clone()
            .application_name(keystone_store::APPLICATION_NAME),
    );
    let router = router_with(keystone_store::Database::new(app_pool.clone()));
    let fragment = "WITH picked AS";
    for _ in 0..3 {
        let answer = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let mut session = app_pool.acquire().await.unwrap();
        assert_eq!(
            cached_plans(&mut session, fragment).await,
            1,
            "no plan kept for the completion statement, or more than one"
        );
    }
    assert_eq!(counter_drift(&pool).await, Vec::<String>::new());
}
