//! SPEC §5.8 and §5.9: what became of an order's recorder commands, and putting dead letters
//! and parked rows back in line (on LocalStack's SQS, faithful to SQS's DLQ moves).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use keystone_queue::dead_letters::DeadLetterRoute;
use keystone_queue::poller::poll_once;
use keystone_queue::relay;
use keystone_queue::relay::RELAY_MAX_ROUNDS;
use keystone_store::Database;
use keystone_store::outbox::{PublishFailure, lease_by_ids, record_publish_failures};
use keystone_tests::notify::*;
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

const LEASE: Duration = Duration::from_secs(60);

/// An order whose completion cancels one ready task on each of `devices` (one notification
/// per device), finalized by the admin with nothing published.
async fn finalized_order(pool: &PgPool, devices: &[&str]) -> (Scenario, Vec<(String, i64)>) {
    let s = Scenario::new(pool, 1, 1, 0).await;
    for (i, device) in devices.iter().enumerate() {
        s.add_axon_batch(&format!("AX-{i}"), device, &[("ready", 1)])
            .await;
    }
    let response = admin_post(&router(pool.clone()), &finalize_path(s.order_id), json!({})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT device_id, id FROM recorder_outbox ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), devices.len());
    (s, rows)
}

fn outbox_id(rows: &[(String, i64)], device: &str) -> i64 {
    rows.iter().find(|(d, _)| d == device).unwrap().1
}

/// Parks a row as the publisher does after SQS refused it `OUTBOX_PARK_AFTER` times.
async fn park(db: &Database, id: i64) {
    assert_eq!(lease_by_ids(db, &[id], LEASE).await.unwrap().len(), 1);
    let refusal = PublishFailure {
        outbox_id: id,
        reason: "InvalidParameterValue: refused".to_owned(),
        refused: true,
    };
    record_publish_failures(db, &[refusal], 1).await.unwrap();
}

fn record_of(
    messages: &[aws_sdk_sqs::types::Message],
    device: &str,
    receives: u32,
) -> aws_lambda_events::event::sqs::SqsMessage {
    let message = messages
        .iter()
        .find(|m| {
            m.body()
                .unwrap()
                .contains(&format!("\"device_id\":\"{device}\""))
        })
        .unwrap();
    let mut record = as_lambda_record(message);
    record
        .attributes
        .insert("ApproximateReceiveCount".to_owned(), receives.to_string());
    record
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_admin_sees_every_state_of_an_orders_commands(pool: PgPool) {
    let devices = [
        "axon-delivered",
        "axon-retrying",
        "axon-dead",
        "axon-published",
        "axon-pending",
        "axon-parked",
    ];
    let (s, rows) = finalized_order(&pool, &devices).await;
    let db = app_db(&pool);
    park(&db, outbox_id(&rows, "axon-parked")).await;
    // Leased by a publisher that is still at it: not on the queue yet.
    lease_by_ids(&db, &[outbox_id(&rows, "axon-pending")], LEASE)
        .await
        .unwrap();
    let queue = TestQueue::faithful("states", 3, 30).await;
    let published = relay(&queue.publisher(&pool), 10, RELAY_MAX_ROUNDS)
        .await
        .unwrap();
    assert_eq!(published.published, 4);
    let messages = queue.drain(&queue.pair.url).await;
    let recorder = FakeRecorder::start().await;
    recorder.set_behavior("axon-retrying", 503, Duration::ZERO);
    recorder.set_behavior("axon-dead", 503, Duration::ZERO);
    let notifier = recorder.notifier_for(&pool, &queue);
    let records = vec![
        record_of(&messages, "axon-delivered", 1),
        record_of(&messages, "axon-retrying", 1),
        // maxReceiveCount is 3: this failure is the last one SQS allows.
        record_of(&messages, "axon-dead", 3),
    ];
    notifier.handle(sqs_event(records)).await;

    let path = format!("/api/v1/orders/{}/notifications", s.order_id);
    let response = get(&router(pool.clone()), &path, Some(&admin_token())).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["order_id"], json!(s.order_id.to_string()));
    assert_eq!(
        response.body["summary"],
        json!({"pending": 1, "published": 1, "retrying": 1, "delivered": 1, "dead_lettered": 1,
               "parked": 1, "held_back": 0, "superseded": 0})
    );
    let notifications = response.body["notifications"].as_array().unwrap();
    let by_device = |device: &str| -> &Value {
        notifications
            .iter()
            .find(|n| n["device_id"] == json!(device))
            .unwrap()
    };
    for (device, state) in [
        ("axon-delivered", "delivered"),
        ("axon-retrying", "retrying"),
        ("axon-dead", "dead_lettered"),
        ("axon-published", "published"),
        ("axon-pending", "pending"),
        ("axon-parked", "parked"),
    ] {
        assert_eq!(by_device(device)["state"], json!(state), "{device}");
    }
    let dead = by_device("axon-dead");
    assert_eq!(dead["delivery_attempts"], json!(1));
    assert_eq!(dead["last_error"], json!("recorder answered 503"));
    assert_eq!(dead["action"], json!("clear"));
    assert!(dead["task_id"].as_str().unwrap().starts_with("task_"));
    assert!(dead["published_at"].is_string() && dead["delivered_at"].is_null());
    assert!(by_device("axon-delivered")["delivered_at"].is_string());
    let parked = by_device("axon-parked");
    assert_eq!(parked["publish_attempts"], json!(1));
    assert_eq!(
        parked["last_error"],
        json!("InvalidParameterValue: refused")
    );
    let ids: Vec<&str> = notifications
        .iter()
        .map(|n| n["notification_id"].as_str().unwrap())
        .collect();
    let mut oldest_first: Vec<(i64, &str)> = rows
        .iter()
        .map(|(device, id)| (*id, by_device(device)["notification_id"].as_str().unwrap()))
        .collect();
    oldest_first.sort();
    assert_eq!(
        ids,
        oldest_first.iter().map(|(_, n)| *n).collect::<Vec<_>>()
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn order_notifications_are_for_admins_and_known_orders(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let path = format!("/api/v1/orders/{}/notifications", s.order_id);
    get(&router, &path, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "authentication required");
    get(&router, &path, Some(&s.seat.token))
        .await
        .assert_error(StatusCode::FORBIDDEN, "admin role required");
    get(
        &router,
        "/api/v1/orders/999999/notifications",
        Some(&admin_token()),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "order not found");
    get(
        &router,
        "/api/v1/orders/0/notifications",
        Some(&admin_token()),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid order id");
    let empty = get(&router, &path, Some(&admin_token())).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.body["notifications"], json!([]));
    assert_eq!(empty.body["summary"]["pending"], json!(0));
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn redrive_puts_dead_letters_and_parked_rows_back_and_each_device_is_told_once(pool: PgPool) {
    let (_, rows) = finalized_order(&pool, &["axon-broken", "axon-refused"]).await;
    let db = app_db(&pool);
    park(&db, outbox_id(&rows, "axon-refused")).await;
    // maxReceiveCount 2, visibility 1 s.
    let queue = TestQueue::faithful("redrive", 2, 1).await;
    relay(&queue.publisher(&pool), 10, RELAY_MAX_ROUNDS)
        .await
        .unwrap();
    let recorder = FakeRecorder::start().await;
    recorder.set_behavior("axon-broken", 503, Duration::ZERO);
    let notifier = recorder.notifier_for(&pool, &queue);
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.message_count(&queue.pair.dlq_url).await < 1 {
        assert!(Instant::now() < deadline, "never dead-lettered");
        poll_once(&queue.client, &queue.pair.url, &notifier, 1)
            .await
            .unwrap();
    }
    let calls = |device: &str| {
        recorder
            .calls()
            .iter()
            .filter(|c| c.device_id == device)
            .count()
    };
    assert_eq!(calls("axon-broken"), 2, "tried maxReceiveCount times");
    recorder.set_behavior("axon-broken", 200, Duration::ZERO);

    let route = DeadLetterRoute::new(queue.client.clone(), queue.pair.url.clone());
    let router =
        keystone_local::routes().with_state(state(pool.clone()).with_redrive(Arc::new(route)));
    let redrive = |router: axum::Router| async move {
        send(
            &router,
            Method::POST,
            "/api/v1/notifications/redrive",
            Some(&admin_token()),
            &[],
            "",
        )
        .await
    };
    let response = redrive(router.clone()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    // Both commands are back in line: the dead-lettered one under a new deduplication id, and
    // its message is out of the DLQ.
    assert_eq!(
        response.body,
        json!({"dlq_messages_moved": 1, "outbox_rows_requeued": 2, "dead_letters_left": 0,
               "stopped_for_time": false})
    );

    // Both go out with the next relay run and reach their devices once.
    assert_eq!(
        relay(&queue.publisher(&pool), 10, RELAY_MAX_ROUNDS)
            .await
            .unwrap()
            .published,
        2
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while calls("axon-refused") < 1 || calls("axon-broken") < 3 {
        assert!(Instant::now() < deadline, "{:?}", recorder.calls());
        poll_once(&queue.client, &queue.pair.url, &notifier, 1)
            .await
            .unwrap();
    }
    for _ in 0..3 {
        poll_once(&queue.client, &queue.pair.url, &notifier, 1)
            .await
            .unwrap();
    }
    assert_eq!(
        calls("axon-broken"),
        3,
        "exactly once more after the redrive"
    );
    assert_eq!(calls("axon-refused"), 1);
    let delivered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM recorder_deliveries WHERE status = 'delivered'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(delivered, 2);

    // Safe to repeat: nothing left to move, nothing delivered twice.
    let again = redrive(router).await;
    assert_eq!(
        again.body,
        json!({"dlq_messages_moved": 0, "outbox_rows_requeued": 0, "dead_letters_left": 0,
               "stopped_for_time": false})
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn redrive_is_for_admins(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    send(
        &router,
        Method::POST,
        "/api/v1/notifications/redrive",
        Some(&s.seat.token),
        &[],
        "",
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "admin role required");
    send(
        &router,
        Method::POST,
        "/api/v1/notifications/redrive",
        None,
        &[],
        "",
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "authentication required");
}
