//! SPEC §7 end to end: outbox → SQS FIFO (LocalStack's SQS, which keeps FIFO groups, the
//! dedup window and DLQ moves as SQS does) → recorder-notifier → a fake Axon recorder.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use keystone_queue::poller::poll_once;
use keystone_queue::relay;
use keystone_queue::relay::RELAY_MAX_ROUNDS;
use keystone_tests::notify::*;
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

/// An order of target 2 whose completion cancels, on Axon robot `axon-a`, two ready tasks
/// and one in-progress task, and on `axon-b` one ready task: four notifications.
struct World {
    s: Scenario,
}

async fn world(pool: &PgPool) -> World {
    let s = Scenario::new(pool, 2, 2, 0).await;
    let a = s.add_seat("AX-A", None, Some("axon-a")).await;
    let b = s
        .add_seat("AX-B", Some(json!({"requires_axon": true})), Some("axon-b"))
        .await;
    let batch_a = s.add_batch(s.order_id, a.workstation_id).await;
    s.add_tasks(batch_a, s.group_b, 2, "ready").await;
    s.add_tasks(batch_a, s.group_b, 1, "in_progress").await;
    let batch_b = s.add_batch(s.order_id, b.workstation_id).await;
    s.add_tasks(batch_b, s.group_b, 1, "ready").await;
    World { s }
}

fn router_publishing_to(pool: &PgPool, publisher: keystone_queue::SqsPublisher) -> axum::Router {
    keystone_local::routes().with_state(state(pool.clone()).with_outbox(Arc::new(publisher)))
}

async fn complete_order(router: &axum::Router, w: &World) -> TestResponse {
    let response = complete(
        router,
        &w.s.seat.token,
        w.s.batch_id,
        w.s.group_a.body(2),
        &[],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["order"]["status"], "completed");
    response
}

async fn unpublished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM recorder_outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn schema_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(include_str!(
        "../../docs/schemas/recorder-command.schema.json"
    ))
    .unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// `(device, action, body)` of every call, sorted.
fn calls_summary(recorder: &FakeRecorder) -> Vec<(String, String, Value)> {
    let mut calls: Vec<_> = recorder
        .calls()
        .into_iter()
        .map(|c| (c.device_id, c.action, c.body))
        .collect();
    calls.sort_by(|x, y| (&x.0, &x.1, x.2.to_string()).cmp(&(&y.0, &y.1, y.2.to_string())));
    calls
}

async fn expected_calls(pool: &PgPool) -> Vec<(String, String, Value)> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT device_id, action, task_id FROM recorder_outbox")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut calls: Vec<_> = rows
        .into_iter()
        .map(|(device, action, task)| {
            let body = if action == "cancel" {
                json!({"task_id": task})
            } else {
                json!({})
            };
            (device, action, body)
        })
        .collect();
    calls.sort_by(|x, y| (&x.0, &x.1, x.2.to_string()).cmp(&(&y.0, &y.1, y.2.to_string())));
    calls
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_order_completion_reaches_each_device_exactly_once(pool: PgPool) {
    let w = world(&pool).await;
    let queue = TestQueue::faithful("e2e", 5, 30).await;
    let recorder = FakeRecorder::start().await;
    let router = router_publishing_to(&pool, queue.publisher(&pool));

    complete_order(&router, &w).await;

    assert_eq!(unpublished(&pool).await, 0, "published right after commit");
    let messages = queue.drain(&queue.pair.url).await;
    assert_eq!(messages.len(), 4);
    let validator = schema_validator();
    let outbox: Vec<(String, String)> = sqlx::query_as(
        "SELECT notification_id, device_id FROM recorder_outbox ORDER BY notification_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut seen = Vec::new();
    for message in &messages {
        let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
        assert!(
            validator.is_valid(&body),
            "{body} matches the JSON Schema: {:?}",
            validator
                .iter_errors(&body)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        );
        let attributes = message.attributes().unwrap();
        let group = attributes
            .get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
            .unwrap();
        let dedup = attributes
            .get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageDeduplicationId)
            .unwrap();
        assert_eq!(
            group,
            body["device_id"].as_str().unwrap(),
            "grouped by device"
        );
        assert_eq!(
            dedup,
            body["notification_id"].as_str().unwrap(),
            "deduplicated by notification"
        );
        assert_eq!(body["order_id"], json!(w.s.order_id.to_string()));
        assert_eq!(body["reason"], "order_completed");
        seen.push((
            body["notification_id"].as_str().unwrap().to_owned(),
            group.clone(),
        ));
    }
    seen.sort();
    assert_eq!(seen, outbox);

    let response = recorder
        .notifier(&pool)
        .handle(sqs_event(messages.iter().map(as_lambda_record).collect()))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(calls_summary(&recorder), expected_calls(&pool).await);
    let devices: BTreeMap<String, usize> =
        recorder
            .calls()
            .into_iter()
            .fold(BTreeMap::new(), |mut m, c| {
                *m.entry(c.device_id).or_insert(0) += 1;
                m
            });
    assert_eq!(
        devices,
        BTreeMap::from([("axon-a".to_owned(), 3), ("axon-b".to_owned(), 1)])
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn with_sqs_down_the_request_succeeds_and_the_relay_publishes_later(pool: PgPool) {
    let w = world(&pool).await;
    let dead_client = unreachable_sqs_client().await;
    let queue = TestQueue::faithful("down", 5, 30).await;
    let dead =
        keystone_queue::SqsPublisher::new(dead_client, queue.pair.url.clone(), app_db(&pool));
    let router = router_publishing_to(&pool, dead);

    complete_order(&router, &w).await;

    assert_eq!(
        unpublished(&pool).await,
        4,
        "nothing published, nothing lost"
    );
    // Each device's first row was tried and failed; its later rows were not tried at all (a
    // device's rows reach SQS in order, so nothing goes after a failed one).
    let failures: Vec<(String, i32, Option<String>)> = sqlx::query_as(
        "SELECT device_id, publish_attempts, last_error FROM recorder_outbox ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut seen = std::collections::HashSet::new();
    for (device, attempts, error) in &failures {
        if seen.insert(device.clone()) {
            assert!(*attempts == 1 && error.is_some(), "{failures:?}");
        } else {
            assert!(*attempts == 0 && error.is_none(), "{failures:?}");
        }
    }

    let outcome = relay(&queue.publisher(&pool), 100, RELAY_MAX_ROUNDS)
        .await
        .unwrap();
    assert_eq!((outcome.published, outcome.failed), (4, 0));
    let again = relay(&queue.publisher(&pool), 100, RELAY_MAX_ROUNDS)
        .await
        .unwrap();
    assert_eq!(again.published, 0, "published rows are not sent again");
    assert_eq!(unpublished(&pool).await, 0);
    assert_eq!(queue.message_count(&queue.pair.url).await, 4);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn relays_running_at_once_never_publish_a_row_twice(pool: PgPool) {
    let s = Scenario::new(&pool, 1, 1, 0).await;
    s.add_axon_batch("AX-R", "axon-r", &[("ready", 45)]).await;
    // No publisher on the request: everything is left to the relays.
    complete(
        &router(pool.clone()),
        &s.seat.token,
        s.batch_id,
        s.group_a.body(1),
        &[],
    )
    .await;
    assert_eq!(unpublished(&pool).await, 45);
    let queue = TestQueue::faithful("relays", 5, 30).await;

    let relays = [
        queue.publisher(&pool),
        queue.publisher(&pool),
        queue.publisher(&pool),
    ];
    let (a, b, c) = tokio::join!(
        relay(&relays[0], 5, RELAY_MAX_ROUNDS),
        relay(&relays[1], 5, RELAY_MAX_ROUNDS),
        relay(&relays[2], 5, RELAY_MAX_ROUNDS),
    );

    let outcomes = [a.unwrap(), b.unwrap(), c.unwrap()];
    let published: usize = outcomes.iter().map(|o| o.published).sum();
    assert_eq!(published, 45, "each row sent by exactly one relay");
    let leased_twice: i64 =
        sqlx::query_scalar("SELECT count(*) FROM recorder_outbox WHERE publish_attempts <> 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(leased_twice, 0);
    assert_eq!(queue.message_count(&queue.pair.url).await, 45);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_inline_publish_racing_the_relay_delivers_one_rpc_per_notification(pool: PgPool) {
    let w = world(&pool).await;
    let queue = TestQueue::faithful("race", 5, 30).await;
    let recorder = FakeRecorder::start().await;
    let router = router_publishing_to(&pool, queue.publisher(&pool));
    let relay_publisher = queue.publisher(&pool);

    let (_, relayed) = tokio::join!(complete_order(&router, &w), async {
        let mut total = 0;
        for _ in 0..20 {
            total += relay(&relay_publisher, 2, RELAY_MAX_ROUNDS)
                .await
                .unwrap()
                .published;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        total
    });
    // Whatever the relay did not take, the request did; nothing is left.
    assert!(relayed <= 4);
    assert_eq!(unpublished(&pool).await, 0);

    let messages = queue.drain(&queue.pair.url).await;
    recorder
        .notifier(&pool)
        .handle(sqs_event(messages.iter().map(as_lambda_record).collect()))
        .await;
    assert_eq!(calls_summary(&recorder), expected_calls(&pool).await);
}

/// Completes the world's order through a router publishing to `queue`, and answers the one
/// message that reached the queue for `device`.
async fn finalized_message_for(
    pool: &PgPool,
    w: &World,
    queue: &TestQueue,
    device: &str,
) -> aws_sdk_sqs::types::Message {
    complete_order(&router_publishing_to(pool, queue.publisher(pool)), w).await;
    queue
        .drain(&queue.pair.url)
        .await
        .into_iter()
        .find(|m| m.body().unwrap().contains(device))
        .unwrap()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_message_delivered_twice_calls_the_device_once(pool: PgPool) {
    let w = world(&pool).await;
    let queue = TestQueue::faithful("dup", 5, 30).await;
    let recorder = FakeRecorder::start().await;
    // The device is slow, so concurrent duplicates overlap.
    recorder.set_behavior("axon-b", 200, Duration::from_millis(200));
    let message = &finalized_message_for(&pool, &w, &queue, "axon-b").await;
    let notifier = recorder.notifier(&pool);

    // Twice at once, as two deliveries of one SQS message.
    let mut first = as_lambda_record(message);
    first.message_id = Some("delivery-1".to_owned());
    let mut second = as_lambda_record(message);
    second.message_id = Some("delivery-2".to_owned());
    let response = notifier.handle(sqs_event(vec![first, second])).await;
    // The one that found the delivery in flight asks SQS to retry it.
    assert!(response.batch_item_failures.len() <= 1, "{response:?}");
    // And once more later: acknowledged without a call.
    let later = notifier
        .handle(sqs_event(vec![as_lambda_record(message)]))
        .await;
    assert!(later.batch_item_failures.is_empty());

    assert_eq!(
        recorder
            .calls()
            .iter()
            .filter(|c| c.device_id == "axon-b")
            .count(),
        1
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn failing_devices_are_retried_then_dead_lettered_while_others_are_delivered(pool: PgPool) {
    let w = world(&pool).await;
    // maxReceiveCount 2, visibility timeout 2 s: a failed message comes back after 2 s, and
    // moves to the DLQ when received a third time.
    let queue = TestQueue::faithful("dlq", 2, 2).await;
    let recorder = FakeRecorder::start().await;
    recorder.set_behavior("axon-a", 503, Duration::ZERO);
    // axon-b times out first (the consumer's RPC timeout is 500 ms), then answers.
    recorder.set_behavior("axon-b", 200, Duration::from_secs(2));
    complete_order(&router_publishing_to(&pool, queue.publisher(&pool)), &w).await;
    let notifier = recorder.notifier(&pool);

    let deadline = Instant::now() + Duration::from_secs(40);
    let mut rounds = 0;
    while Instant::now() < deadline {
        let polled = poll_once(&queue.client, &queue.pair.url, &notifier, 1)
            .await
            .unwrap();
        if polled.received > 0 {
            rounds += 1;
            if rounds == 1 {
                recorder.set_behavior("axon-b", 200, Duration::ZERO);
            }
            continue;
        }
        let delivered_b = recorder
            .calls()
            .iter()
            .filter(|c| c.device_id == "axon-b")
            .count()
            >= 2;
        if delivered_b && queue.message_count(&queue.pair.dlq_url).await == 3 {
            break;
        }
    }

    let dead_letters = queue.drain(&queue.pair.dlq_url).await;
    let mut dead_devices: Vec<String> = dead_letters
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["device_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    dead_devices.sort();
    assert_eq!(
        dead_devices,
        ["axon-a", "axon-a", "axon-a"],
        "the failing device's messages end in the DLQ"
    );
    let calls = recorder.calls();
    // Per device, only the first message of each receive is tried; the later ones are held
    // back behind it (SPEC §7 "Order per device"). Two receives each try one or more of
    // axon-a's three messages (which ones depends on the order the local SQS server hands
    // them back in), never all three twice.
    let tried_a = calls.iter().filter(|c| c.device_id == "axon-a").count();
    assert!((2..6).contains(&tried_a), "axon-a called {tried_a} times");
    assert_eq!(
        calls.iter().filter(|c| c.device_id == "axon-b").count(),
        2,
        "timed out once, then delivered"
    );
    let delivered: Vec<String> =
        sqlx::query_scalar("SELECT device_id FROM recorder_deliveries WHERE status = 'delivered'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(delivered, ["axon-b"]);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn malformed_messages_fail_with_a_reason_and_never_panic(pool: PgPool) {
    let recorder = FakeRecorder::start().await;
    let good = json!({"notification_id": "order:1:task:task_x:clear", "kind": "recorder_command", "action": "clear",
                      "device_id": "axon-ok", "task_id": "task_x", "batch_id": "batch_x", "order_id": "1",
                      "reason": "order_completed", "created_at": "2026-11-23T21:00:00Z"}).to_string();
    let mut unsafe_device: Value = serde_json::from_str(&good).unwrap();
    unsafe_device["device_id"] = json!("evil.example/../x");
    unsafe_device["notification_id"] = json!("order:1:task:task_y:clear");
    let records = vec![
        record_with_body("no-body", None),
        record_with_body("not-json", Some("{")),
        record_with_body("wrong-shape", Some(r#"{"hello":"world"}"#)),
        record_with_body("bad-action", Some(&good.replace("\"clear\"", "\"reboot\""))),
        record_with_body("unsafe-device", Some(&unsafe_device.to_string())),
        record_with_body("good", Some(&good)),
    ];

    let response = recorder.notifier(&pool).handle(sqs_event(records)).await;

    let mut failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    failed.sort_unstable();
    assert_eq!(
        failed,
        [
            "bad-action",
            "no-body",
            "not-json",
            "unsafe-device",
            "wrong-shape"
        ]
    );
    assert_eq!(
        recorder.calls().len(),
        1,
        "only the good message reached a device"
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_relay_purges_idempotency_keys_older_than_a_day(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let router = router(pool.clone());
    for key in ["old", "fresh"] {
        let response = complete(
            &router,
            &s.seat.token,
            s.batch_id,
            s.group_a.body(1),
            &[("idempotency-key", key)],
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE idempotency_key = 'old'")
        .execute(&pool).await.unwrap();
    let queue = TestQueue::faithful("purge", 5, 30).await;

    let outcome = relay(&queue.publisher(&pool), 100, RELAY_MAX_ROUNDS)
        .await
        .unwrap();

    assert_eq!(outcome.purged_idempotency_keys, 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT idempotency_key FROM idempotency_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["fresh"]);
}

/// SPEC §7 "Order per device": one SQS batch with three commands for `axon-a` and one for
/// `axon-b`; `axon-a`'s first RPC fails.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_failed_command_holds_back_its_device_later_ones_and_nothing_else(pool: PgPool) {
    let w = world(&pool).await;
    let queue = TestQueue::faithful("fifo-order", 5, 30).await;
    let recorder = FakeRecorder::start().await;
    let router = router_publishing_to(&pool, queue.publisher(&pool));
    complete_order(&router, &w).await;
    let messages = queue.drain(&queue.pair.url).await;
    let records: Vec<_> = messages.iter().map(as_lambda_record).collect();
    let of_device = |device: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.attributes.get("MessageGroupId").map(String::as_str) == Some(device))
            .map(|r| r.message_id.clone().unwrap())
            .collect()
    };
    let (a, b) = (of_device("axon-a"), of_device("axon-b"));
    assert_eq!((a.len(), b.len()), (3, 1), "one batch: {records:?}");
    recorder.set_behavior("axon-a", 503, Duration::ZERO);

    let response = recorder
        .notifier(&pool)
        .handle(sqs_event(records.clone()))
        .await;

    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    let mut expected = a.clone();
    expected.sort();
    assert_eq!(failed, expected, "all of axon-a's, none of axon-b's");
    let called: Vec<String> = recorder.calls().into_iter().map(|c| c.device_id).collect();
    let mut called_sorted = called.clone();
    called_sorted.sort();
    assert_eq!(
        called_sorted,
        ["axon-a", "axon-b"],
        "axon-a's later commands were not tried"
    );

    // SQS redelivers axon-a's three, in order; the device is back.
    recorder.set_behavior("axon-a", 200, Duration::ZERO);
    let redelivered: Vec<_> = records
        .iter()
        .filter(|r| a.contains(r.message_id.as_ref().unwrap()))
        .cloned()
        .collect();
    let response = recorder
        .notifier(&pool)
        .handle(sqs_event(redelivered))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    // What axon-a saw, in order: the failed first command, then all three in queue order.
    let bodies_in_queue_order: Vec<serde_json::Value> = records
        .iter()
        .filter(|r| a.contains(r.message_id.as_ref().unwrap()))
        .map(|r| serde_json::from_str(r.body.as_deref().unwrap()).unwrap())
        .collect();
    let seen: Vec<(String, serde_json::Value)> = recorder
        .calls()
        .into_iter()
        .filter(|c| c.device_id == "axon-a")
        .map(|c| (c.action, c.body))
        .collect();
    let expected: Vec<(String, serde_json::Value)> = std::iter::once(&bodies_in_queue_order[0])
        .chain(&bodies_in_queue_order)
        .map(|m| {
            let action = m["action"].as_str().unwrap().to_owned();
            let body = if action == "cancel" {
                json!({"task_id": m["task_id"]})
            } else {
                json!({})
            };
            (action, body)
        })
        .collect();
    assert_eq!(seen, expected);
}

/// SPEC §7 "Group ids": device ids SQS would refuse as a `MessageGroupId` (a space, non-ASCII,
/// over 128 characters) still get one stable group each, and the body keeps the real id.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_device_gets_a_group_id_sqs_accepts(pool: PgPool) {
    let s = Scenario::new(&pool, 1, 1, 0).await;
    let long = "d".repeat(200);
    let devices = ["axon arm 7", "机器人-1", long.as_str(), "axon-ok"];
    for (i, device) in devices.iter().enumerate() {
        s.add_axon_batch(&format!("AX-{i}"), device, &[("ready", 1)])
            .await;
    }
    let queue = TestQueue::faithful("groups", 5, 30).await;
    let response = complete(
        &router_publishing_to(&pool, queue.publisher(&pool)),
        &s.seat.token,
        s.batch_id,
        s.group_a.body(1),
        &[],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);

    let messages = queue.drain(&queue.pair.url).await;
    let mut seen: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            let group = m.attributes().unwrap()
                [&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId]
                .clone();
            (body["device_id"].as_str().unwrap().to_owned(), group)
        })
        .collect();
    seen.sort();
    let mut expected: Vec<(String, String)> = devices
        .iter()
        .map(|d| {
            (
                (*d).to_owned(),
                keystone_queue::message::message_group_id(d).into_owned(),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(seen, expected);
    for (device, group) in &seen {
        let valid = group.len() <= 128 && group.bytes().all(|b| b.is_ascii_graphic());
        assert!(valid, "{device:?} -> {group:?}");
    }
    assert_eq!(unpublished(&pool).await, 0);
}

/// SPEC §7 "Parking": a row SQS refuses again and again is parked after the limit and stops
/// taking the relay's lease, so newer rows go out; an unreachable SQS parks nothing.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn refused_rows_are_parked_and_newer_ones_keep_flowing(pool: PgPool) {
    let s = Scenario::new(&pool, 1, 1, 0).await;
    s.add_axon_batch("AX-P", "axon-p", &[("ready", 3)]).await;
    complete(
        &router(pool.clone()),
        &s.seat.token,
        s.batch_id,
        s.group_a.body(1),
        &[],
    )
    .await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM recorder_outbox ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    let db = app_db(&pool);
    let lease = Duration::from_secs(60);

    // SQS unreachable for a long while: every row fails many times, none is parked.
    let dead_client = unreachable_sqs_client().await;
    let queue = TestQueue::faithful("parking", 5, 30).await;
    let dead = keystone_queue::SqsPublisher::new(dead_client, queue.pair.url.clone(), db.clone())
        .with_park_after(2);
    for _ in 0..3 {
        let outcome = relay(&dead, 10, 1).await.unwrap();
        assert_eq!(
            (outcome.leased, outcome.failed),
            (3, 1),
            "the device's first row fails, the later ones wait behind it"
        );
    }
    let parked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM recorder_outbox WHERE parked_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(parked, 0, "an outage is nobody's fault");

    // The oldest row is refused by SQS itself twice (as SQS refuses a message: sender's fault).
    for _ in 0..2 {
        let leased = keystone_store::outbox::lease_by_ids(&db, &ids[..1], lease)
            .await
            .unwrap();
        assert_eq!(leased.len(), 1, "not parked yet");
        keystone_store::outbox::record_publish_failures(
            &db,
            &[keystone_store::outbox::PublishFailure {
                outbox_id: ids[0],
                reason: "InvalidParameterValue: refused".to_owned(),
                refused: true,
            }],
            2,
        )
        .await
        .unwrap();
    }
    // Parked: the relay's lease of one row at a time takes the newer rows, never it again.
    let outcome = relay(&queue.publisher_on(db.clone()), 1, 10).await.unwrap();
    assert_eq!(outcome.published, 2, "{outcome:?}");
    let rows: Vec<(i64, bool, bool, i32)> = sqlx::query_as(
        "SELECT id, published_at IS NOT NULL, parked_at IS NOT NULL, publish_rejections \
         FROM recorder_outbox ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (ids[0], false, true, 2),
            (ids[1], true, false, 0),
            (ids[2], true, false, 0)
        ]
    );
    assert!(
        keystone_store::outbox::lease_by_ids(&db, &ids[..1], lease)
            .await
            .unwrap()
            .is_empty(),
        "a parked row is out of line until it is put back"
    );
}

/// A command body for `device`, as the publisher writes it.
fn command_body(notification: &str, device: &str, action: &str) -> Value {
    json!({
        "notification_id": notification, "kind": "recorder_command", "action": action,
        "device_id": device, "task_id": format!("task_{notification}"), "batch_id": "batch_1",
        "order_id": "1", "reason": "order_completed", "created_at": "2026-11-24T10:00:00Z"
    })
}

/// A record of `device`'s group, received `receives` times.
fn grouped_record(
    id: &str,
    device: &str,
    body: &str,
    receives: u32,
) -> aws_lambda_events::event::sqs::SqsMessage {
    let mut record = record_with_body(id, Some(body));
    record
        .attributes
        .insert("MessageGroupId".to_owned(), device.to_owned());
    record
        .attributes
        .insert("ApproximateReceiveCount".to_owned(), receives.to_string());
    record
}

/// SPEC §7 "Poison and forward compatibility": a message that can never be handled goes to
/// the DLQ at once with its reason and is acknowledged, so the device's later commands are not
/// held behind it; new fields are ignored; an unknown kind is acknowledged.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn poison_goes_straight_to_the_dlq_and_new_fields_or_kinds_do_not(pool: PgPool) {
    let queue = TestQueue::faithful("poison", 5, 30).await;
    let recorder = FakeRecorder::start().await;
    let first = command_body("n1", "axon-p", "clear");
    let mut with_new_field = command_body("n2", "axon-p", "cancel");
    with_new_field["priority"] = json!("high");
    let mut other_kind = command_body("n3", "axon-p", "clear");
    other_kind["kind"] = json!("firmware_update");
    let records = vec![
        grouped_record("m1", "axon-p", &first.to_string(), 1),
        grouped_record("m-poison", "axon-p", "{not json", 1),
        grouped_record("m2", "axon-p", &with_new_field.to_string(), 1),
        grouped_record("m3", "axon-p", &other_kind.to_string(), 1),
    ];

    let response = recorder
        .notifier_for(&pool, &queue)
        .handle(sqs_event(records))
        .await;

    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let actions: Vec<String> = recorder.calls().into_iter().map(|c| c.action).collect();
    assert_eq!(
        actions,
        ["clear", "cancel"],
        "both commands, in order, past the poison"
    );
    let dead = queue
        .client
        .receive_message()
        .queue_url(&queue.pair.dlq_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body(), Some("{not json"));
    let attribute = |name: &str| {
        dead[0]
            .message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        attribute("keystone_reason").starts_with("body is not a recorder command"),
        "{}",
        attribute("keystone_reason")
    );
    assert_eq!(attribute("keystone_source_message_id"), "m-poison");
}

/// SPEC §7 "Delivery records": the failure on the receive the queue's redrive policy says is
/// the last marks the record dead-lettered; earlier failures leave it retrying.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_failure_on_the_last_allowed_receive_is_recorded_as_dead_lettered(pool: PgPool) {
    // maxReceiveCount 3, read by the consumer from the queue's redrive policy.
    let queue = TestQueue::faithful("last-receive", 3, 30).await;
    let recorder = FakeRecorder::start().await;
    recorder.set_behavior("axon-d", 503, Duration::ZERO);
    let notifier = recorder.notifier_for(&pool, &queue);
    let body = command_body("n-dead", "axon-d", "clear").to_string();
    let status = || async {
        sqlx::query_as::<_, (String, i32, Option<String>)>(
            "SELECT status, attempts, last_error FROM recorder_deliveries WHERE notification_id = 'n-dead'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };

    for receive in 1..=2 {
        let response = notifier
            .handle(sqs_event(vec![grouped_record(
                "m", "axon-d", &body, receive,
            )]))
            .await;
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(
            status().await.0,
            "in_progress",
            "receive {receive}: SQS will retry"
        );
    }
    let response = notifier
        .handle(sqs_event(vec![grouped_record("m", "axon-d", &body, 3)]))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1);
    let (state, attempts, error) = status().await;
    assert_eq!((state.as_str(), attempts), ("dead_lettered", 3));
    assert_eq!(error.as_deref(), Some("recorder answered 503"));

    // Redriven from the DLQ and the device is back: delivered after all.
    recorder.set_behavior("axon-d", 200, Duration::ZERO);
    let response = notifier
        .handle(sqs_event(vec![grouped_record("m", "axon-d", &body, 1)]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(status().await.0, "delivered");
}

/// A device that never answers in time: its commands end in the DLQ after maxReceiveCount
/// receives (its delivery record says dead-lettered) while another device's are delivered.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_device_that_always_times_out_ends_in_the_dlq_and_holds_up_no_other(pool: PgPool) {
    let w = world(&pool).await;
    let queue = TestQueue::faithful("timeout", 2, 1).await;
    let recorder = FakeRecorder::start().await;
    // The consumer's RPC timeout is 500 ms.
    recorder.set_behavior("axon-a", 200, Duration::from_secs(3));
    complete_order(&router_publishing_to(&pool, queue.publisher(&pool)), &w).await;
    let notifier = recorder.notifier_for(&pool, &queue);

    let deadline = Instant::now() + Duration::from_secs(40);
    while queue.message_count(&queue.pair.dlq_url).await < 3 {
        assert!(
            Instant::now() < deadline,
            "axon-a's commands never reached the DLQ"
        );
        poll_once(&queue.client, &queue.pair.url, &notifier, 1)
            .await
            .unwrap();
    }

    let dead: Vec<String> = queue
        .drain(&queue.pair.dlq_url)
        .await
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["device_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(dead, ["axon-a", "axon-a", "axon-a"]);
    let records: Vec<(String, String)> = sqlx::query_as(
        "SELECT device_id, status FROM recorder_deliveries ORDER BY device_id, status",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        records.contains(&("axon-b".to_owned(), "delivered".to_owned())),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .filter(|(device, _)| device == "axon-a")
            .all(|(_, status)| status == "dead_lettered"),
        "{records:?}"
    );
    assert!(records.iter().any(|(device, _)| device == "axon-a"));
}

/// Tracing from request to device call (SPEC §9 "Operations"): the X-Ray trace header of the
/// request that finalized the order rides with its outbox rows and SQS messages (as
/// `AWSTraceHeader`, which links the consumer's trace, and as Keystone's attribute); without
/// one, a correlation id does.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_request_trace_context_reaches_the_consumer(pool: PgPool) {
    let w = world(&pool).await;
    let queue = TestQueue::faithful("trace", 5, 30).await;
    let router = router_publishing_to(&pool, queue.publisher(&pool));
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    let response = complete(
        &router,
        &w.s.seat.token,
        w.s.batch_id,
        w.s.group_a.body(2),
        &[("x-amzn-trace-id", header)],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);

    let stored: Vec<Option<String>> =
        sqlx::query_scalar("SELECT trace_context FROM recorder_outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(stored, vec![Some(header.to_owned()); 4]);
    let messages = queue
        .client
        .receive_message()
        .queue_url(&queue.pair.url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(!messages.is_empty());
    for message in &messages {
        let record = as_lambda_record(message);
        let mut record = record;
        record.message_attributes = message
            .message_attributes()
            .map(|attributes| {
                attributes
                    .iter()
                    .map(|(name, value)| {
                        let mut attribute =
                            aws_lambda_events::event::sqs::SqsMessageAttribute::default();
                        attribute.string_value = value.string_value().map(str::to_owned);
                        attribute.data_type = Some(value.data_type().to_owned());
                        (name.clone(), attribute)
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            keystone_queue::consumer::trace_context(&record).as_deref(),
            Some(header)
        );
    }

    // No trace header: the request's correlation id instead.
    let other = Scenario::new(&pool, 1, 1, 0).await;
    other
        .add_axon_batch("AX-T", "axon-t", &[("ready", 1)])
        .await;
    let response = complete(
        &router,
        &other.seat.token,
        other.batch_id,
        other.group_a.body(1),
        &[],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let contexts: Vec<Option<String>> =
        sqlx::query_scalar("SELECT trace_context FROM recorder_outbox WHERE order_id = $1")
            .bind(other.order_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        contexts.iter().all(|c| c
            .as_deref()
            .is_some_and(|c| c.starts_with("Keystone-Request="))),
        "{contexts:?}"
    );
}

/// SPEC §9 time budgets: a relay run takes no new round once its invocation is nearly out of
/// time, and says so; the rows stay for the next run.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_relay_out_of_time_takes_no_round_and_leaves_the_rows(pool: PgPool) {
    let w = world(&pool).await;
    let queue = TestQueue::faithful("late-relay", 5, 30).await;
    let dead = keystone_queue::SqsPublisher::new(
        unreachable_sqs_client().await,
        queue.pair.url.clone(),
        app_db(&pool),
    );
    complete_order(&router_publishing_to(&pool, dead), &w).await;
    assert_eq!(unpublished(&pool).await, 4);

    let late = std::time::Instant::now();
    let outcome =
        keystone_queue::relay_until(&queue.publisher(&pool), 100, RELAY_MAX_ROUNDS, Some(late))
            .await
            .unwrap();

    assert!(outcome.out_of_time, "{outcome:?}");
    assert_eq!((outcome.leased, outcome.published), (0, 0));
    assert_eq!(unpublished(&pool).await, 4, "left for the next run");
    let next = relay(&queue.publisher(&pool), 100, RELAY_MAX_ROUNDS)
        .await
        .unwrap();
    assert_eq!((next.published, next.out_of_time), (4, false));
}

/// The consumer starts no message once its invocation is nearly out of time: the messages are
/// reported failed, untried, for SQS to deliver again.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_consumer_out_of_time_tries_nothing_and_reports_every_message(pool: PgPool) {
    let w = world(&pool).await;
    let queue = TestQueue::faithful("late-consumer", 5, 30).await;
    let recorder = FakeRecorder::start().await;
    complete_order(&router_publishing_to(&pool, queue.publisher(&pool)), &w).await;
    let messages = queue.drain(&queue.pair.url).await;
    assert_eq!(messages.len(), 4);

    let response = recorder
        .notifier(&pool)
        .handle_until(
            sqs_event(messages.iter().map(as_lambda_record).collect()),
            Some(std::time::Instant::now()),
        )
        .await;

    assert_eq!(response.batch_item_failures.len(), 4, "{response:?}");
    assert!(recorder.calls().is_empty(), "no device was called");
}

/// A recorder that answers with a redirect has not run the command, and the consumer does not
/// follow it to wherever it points: the message fails and is retried.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_redirecting_recorder_is_a_failure_and_is_not_followed(pool: PgPool) {
    let w = world(&pool).await;
    let queue = TestQueue::faithful("redirect", 5, 30).await;
    let recorder = FakeRecorder::start().await;
    recorder.set_behavior("axon-b", 307, Duration::ZERO);
    let message = &finalized_message_for(&pool, &w, &queue, "axon-b").await;
    let response = recorder
        .notifier(&pool)
        .handle(sqs_event(vec![as_lambda_record(message)]))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
    let elsewhere: Vec<_> = recorder
        .calls()
        .into_iter()
        .filter(|c| c.device_id.starts_with("elsewhere-"))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the redirect was followed: {elsewhere:?}"
    );
}
