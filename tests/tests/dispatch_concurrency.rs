//! SPEC §6 under load: the quota holds under concurrent creates and adjusts, and a mixed
//! storm of every write endpoint against shared orders never deadlocks or breaks an
//! invariant.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use keystone_tests::*;
use rand::Rng;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn sixteen_concurrent_creates_and_adjusts_never_exceed_the_target(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect_with(connect)
        .await
        .unwrap();
    let s = Scenario::new(&pool, 50, 0, 0).await;
    let mut empty_batches = Vec::new();
    for _ in 0..8 {
        empty_batches.push(s.add_batch(s.order_id, s.seat.workstation_id).await);
    }
    let router = router(pool.clone());

    let mut handles = Vec::new();
    for batch in empty_batches {
        let (router, entry) = (router.clone(), s.group_a.entry(5));
        handles.push(tokio::spawn(async move {
            admin_post(
                &router,
                &adjust_path(batch),
                json!({"task_groups": [entry]}),
            )
            .await
        }));
    }
    for _ in 0..8 {
        let body = json!({"order_id": s.order_id, "workstation_id": s.seat.workstation_id,
                          "task_groups": [s.group_b.entry(5)]});
        let router = router.clone();
        handles.push(tokio::spawn(async move {
            admin_post(&router, "/api/v1/batches", body).await
        }));
    }
    let mut statuses = BTreeMap::new();
    for handle in handles {
        let response = handle.await.unwrap();
        if response.status == StatusCode::BAD_REQUEST {
            assert!(
                response.body["error"].as_str().unwrap().contains("exceed"),
                "{}",
                response.text
            );
        }
        *statuses.entry(response.status.as_u16()).or_insert(0) += 1;
    }

    // 80 tasks were asked for against a target of 50: exactly ten requests of 5 fit.
    assert_eq!(
        order_task_count(&pool, s.order_id).await,
        50,
        "{statuses:?}"
    );
    let successes = statuses.get(&200).unwrap_or(&0) + statuses.get(&201).unwrap_or(&0);
    assert_eq!(successes, 10, "{statuses:?}");
    assert_eq!(statuses.get(&400), Some(&6), "{statuses:?}");
}

const STORM: Duration = Duration::from_secs(10);
/// The storm order that re-targets hit.
const RETARGETED: usize = 2;
const WORKERS: usize = 16;

struct StormOrder {
    order_id: i64,
    seats: Vec<Seat>,
    groups: [Group; 2],
}

/// Three orders, each with two external-device seats holding batches and an Axon seat whose
/// batch has ready and in-progress tasks, so finalization has notifications to write.
async fn storm_world(pool: &PgPool) -> Vec<StormOrder> {
    let mut orders = Vec::new();
    for n in 0..3 {
        let s = Scenario::new(pool, 600, 20, 20).await;
        let second = s
            .add_seat(
                &format!("S{n}-2"),
                Some(json!({"requires_axon": false})),
                Some(&format!("ext-{n}")),
            )
            .await;
        let b2 = s.add_batch(s.order_id, second.workstation_id).await;
        s.add_tasks(b2, s.group_a, 20, "pending").await;
        let axon = s
            .add_seat(&format!("S{n}-AX"), None, Some(&format!("axon-{n}")))
            .await;
        let b3 = s.add_batch(s.order_id, axon.workstation_id).await;
        s.add_tasks(b3, s.group_a, 4, "ready").await;
        s.add_tasks(b3, s.group_b, 4, "in_progress").await;
        sqlx::query("UPDATE batches SET status = 'active', started_at = now() WHERE id = $1")
            .bind(b3)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("UPDATE workstations SET status = 'active' WHERE id = $1")
            .bind(axon.workstation_id)
            .execute(pool)
            .await
            .unwrap();
        orders.push(StormOrder {
            order_id: s.order_id,
            seats: vec![s.seat.clone(), second],
            groups: [s.group_a, s.group_b],
        });
    }
    orders
}

async fn open_batches(pool: &PgPool, order_id: i64, workstation_id: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM batches WHERE order_id = $1 AND workstation_id = $2 \
         AND status IN ('pending', 'active') AND deleted_at IS NULL",
    )
    .bind(order_id)
    .bind(workstation_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_mixed_storm_neither_deadlocks_nor_breaks_invariants(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let setup = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(connect.clone())
        .await
        .unwrap();
    let orders = std::sync::Arc::new(storm_world(&setup).await);
    let storm_pool = PgPoolOptions::new()
        .max_connections(WORKERS as u32 + 4)
        .connect_with(connect)
        .await
        .unwrap();
    let router = router(storm_pool.clone());
    let started = Instant::now();

    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (router, orders, pool) = (router.clone(), orders.clone(), storm_pool.clone());
        workers.push(tokio::spawn(async move {
            let mut seen: BTreeMap<(&'static str, u16), usize> = BTreeMap::new();
            while started.elapsed() < STORM {
                let (pick, op, seat_index, group_index, quantity) = {
                    let mut rng = rand::rng();
                    (rng.random_range(0..orders.len()), rng.random_range(0..100), rng.random_range(0..2_usize),
                     rng.random_range(0..2_usize), rng.random_range(1..4_i64))
                };
                let order = &orders[pick];
                let seat = &order.seats[seat_index];
                let group = order.groups[group_index];
                let batches = open_batches(&pool, order.order_id, seat.workstation_id).await;
                let batch = batches.first().copied();
                let (name, response) = match (op, batch) {
                    // Finalizing and cancelling end an order, so they only join in the last
                    // stretch.
                    (0..=1, _) if started.elapsed() > STORM * 7 / 10 => {
                        ("finalize", admin_post(&router, &finalize_path(order.order_id), json!({})).await)
                    }
                    (2, _) if started.elapsed() > STORM * 8 / 10 => {
                        ("cancel-order", admin_post(&router, &order_control_path(order.order_id, "cancel"), json!({})).await)
                    }
                    (3..=40, Some(batch)) => ("complete", complete(&router, &seat.token, batch, group.body(quantity), &[]).await),
                    (41..=50, Some(batch)) => {
                        ("reopen", send(&router, Method::POST, &reopen_path(batch), Some(&seat.token), &[],
                                        group.body(quantity).to_string()).await)
                    }
                    (51..=64, Some(batch)) => {
                        let target = quantity * 4;
                        ("adjust", admin_post(&router, &adjust_path(batch), json!({"task_groups": [group.entry(target)]})).await)
                    }
                    (65..=66, Some(batch)) => {
                        ("cancel-batch", admin_post(&router, &format!("/api/v1/batches/{batch}/cancel"), json!({})).await)
                    }
                    (67..=70, _) => {
                        let control = if quantity == 1 { "pause" } else { "resume" };
                        (control, admin_post(&router, &order_control_path(order.order_id, control), json!({})).await)
                    }
                    // Re-targets may lower a target below the order's live tasks (SPEC §5.12
                    // allows it), so they hit one order only, which the quota invariant skips.
                    (71..=74, _) if pick == RETARGETED => {
                        let target = rand::rng().random_range(1..80_i64);
                        ("retarget", retarget(&router, order.order_id, json!(target)).await)
                    }
                    _ => {
                        let body = json!({"order_id": order.order_id, "workstation_id": seat.workstation_id,
                                          "task_groups": [group.entry(quantity * 3)]});
                        ("create", admin_post(&router, "/api/v1/batches", body).await)
                    }
                };
                assert!(response.status.as_u16() < 500, "{name}: {} {}", response.status, response.text);
                assert!(!response.text.contains("40P01") && !response.text.contains("deadlock"), "{}", response.text);
                *seen.entry((name, response.status.as_u16())).or_insert(0) += 1;
            }
            seen
        }));
    }
    let mut seen: BTreeMap<(&'static str, u16), usize> = BTreeMap::new();
    for worker in workers {
        for (key, count) in worker.await.unwrap() {
            *seen.entry(key).or_insert(0) += count;
        }
    }
    storm_pool.close().await;
    println!("storm outcomes: {seen:?}");
    for op in [
        "complete",
        "adjust",
        "create",
        "reopen",
        "pause",
        "resume",
        "retarget",
        "cancel-batch",
    ] {
        assert!(
            seen.iter()
                .any(|((name, status), _)| *name == op && *status < 300),
            "{op} never succeeded: {seen:?}"
        );
    }

    // Backends flush their statistics when they exit; the storm pool is closed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deadlocks: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&setup)
    .await
    .unwrap();
    assert_eq!(deadlocks, 0);

    let broken: Vec<(String, i64)> = sqlx::query_as(
        "SELECT 'order with more completed than live tasks', count(*) FROM orders o WHERE \
             (SELECT count(*) FILTER (WHERE status = 'completed') FROM tasks WHERE order_id = o.id AND deleted_at IS NULL) > \
             (SELECT count(*) FROM tasks WHERE order_id = o.id AND deleted_at IS NULL) \
         UNION ALL SELECT 'order over its target', count(*) FROM orders o WHERE o.id <> $1 AND \
             (SELECT count(*) FROM tasks WHERE order_id = o.id AND deleted_at IS NULL) > o.target_count \
         UNION ALL SELECT 'completed order with runnable tasks in open batches', count(*) FROM orders o \
             JOIN batches b ON b.order_id = o.id AND b.deleted_at IS NULL AND b.status IN ('pending', 'active') \
             JOIN tasks t ON t.batch_id = b.id AND t.deleted_at IS NULL AND t.status IN ('pending', 'ready', 'in_progress') \
             WHERE o.status = 'completed' \
         UNION ALL SELECT 'completed order with open batches', count(*) FROM orders o \
             JOIN batches b ON b.order_id = o.id AND b.deleted_at IS NULL AND b.status IN ('pending', 'active') \
             WHERE o.status = 'completed' \
         UNION ALL SELECT 'unstarted or running order at its target', count(*) FROM orders o \
             WHERE o.status IN ('created', 'in_progress') AND o.target_count <= \
             (SELECT count(*) FROM tasks WHERE order_id = o.id AND deleted_at IS NULL AND status = 'completed') \
         UNION ALL SELECT 'completed batch with runnable tasks', count(*) FROM batches b \
             JOIN tasks t ON t.batch_id = b.id AND t.deleted_at IS NULL AND t.status IN ('pending', 'ready', 'in_progress') \
             WHERE b.status = 'completed' AND b.deleted_at IS NULL \
         UNION ALL SELECT 'duplicate outbox keys', count(*) - count(DISTINCT notification_id) FROM recorder_outbox \
         UNION ALL SELECT 'workstation status out of step with its batches', count(*) FROM workstations w \
             WHERE w.status IN ('active', 'inactive') AND (w.status = 'active') <> EXISTS ( \
                 SELECT 1 FROM batches b WHERE b.workstation_id = w.id AND b.status = 'active' AND b.deleted_at IS NULL) \
         UNION ALL SELECT 'cancelled order with open batches', count(*) FROM orders o \
             JOIN batches b ON b.order_id = o.id AND b.deleted_at IS NULL AND b.status IN ('pending', 'active') \
             WHERE o.status = 'cancelled' \
         UNION ALL SELECT 'cancelled batch with runnable tasks', count(*) FROM batches b \
             JOIN tasks t ON t.batch_id = b.id AND t.deleted_at IS NULL AND t.status IN ('pending', 'ready', 'in_progress') \
             WHERE b.status = 'cancelled' AND b.deleted_at IS NULL \
         UNION ALL SELECT 'completion time out of step with status', count(*) FROM tasks \
             WHERE (status = 'completed') <> (completed_at IS NOT NULL) AND status IN ('completed', 'pending') \
         UNION ALL SELECT 'in-progress order without a completed task', count(*) FROM orders o \
             WHERE o.status = 'in_progress' AND NOT EXISTS (SELECT 1 FROM tasks t \
                 WHERE t.order_id = o.id AND t.deleted_at IS NULL AND t.status = 'completed') \
         UNION ALL SELECT 'recorder command for a task that was not cancelled', count(*) \
             FROM recorder_outbox r JOIN tasks t ON t.task_id = r.task_id AND t.deleted_at IS NULL \
             WHERE t.status <> 'cancelled'",
    )
    .bind(orders[RETARGETED].order_id)
    .fetch_all(&setup)
    .await
    .unwrap();
    for (invariant, violations) in broken {
        assert_eq!(violations, 0, "{invariant}");
    }
    // SPEC §3: the stored counters never drift from the task rows.
    assert_eq!(counter_drift(&setup).await, Vec::<String>::new());
}
