//! SPEC §7 "Order end to end", against transports that misbehave: a device receives its
//! commands in outbox order when SQS refuses a whole `SendMessageBatch`, refuses one entry of
//! it (a fault-injecting SQS endpoint in front of LocalStack's SQS), or hands messages over out
//! of order (moto's messages, handed over in reverse); a group that dead-letters shows every member
//! `dead_lettered`; a redrive pressed the moment a command shows `dead_lettered` delivers it
//! exactly once; a redriven `clear` overtaken by a later command is superseded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use keystone_queue::dead_letters::DeadLetterRoute;
use keystone_queue::poller::poll_once;
use keystone_queue::relay::RELAY_MAX_ROUNDS;
use keystone_queue::{RecorderNotifier, SqsPublisher, relay};
use keystone_tests::notify::*;
use keystone_tests::sqs_faults::SqsFaults;
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

/// An order (target 1) whose completion sends `axon-a` one command per task of `a_tasks`
/// (`clear` for a ready task, `cancel` for an in-progress one) and `axon-b` one `clear`;
/// nothing is published yet.
async fn finalized(pool: &PgPool, a_tasks: &[(&str, i64)]) -> Scenario {
    let s = Scenario::new(pool, 1, 1, 0).await;
    s.add_axon_batch("AX-A", "axon-a", a_tasks).await;
    s.add_axon_batch("AX-B", "axon-b", &[("ready", 1)]).await;
    let response = complete(
        &router(pool.clone()),
        &s.seat.token,
        s.batch_id,
        s.group_a.body(1),
        &[],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    s
}

/// `device`'s notification ids in outbox order.
async fn outbox_order(pool: &PgPool, device: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT notification_id FROM recorder_outbox WHERE device_id = $1 ORDER BY id",
    )
    .bind(device)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// `device`'s commands as the device should receive them: `(action, task id)` in outbox order
/// (a `clear` carries no task id).
async fn expected_calls(pool: &PgPool, device: &str) -> Vec<(String, Value)> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, task_id FROM recorder_outbox WHERE device_id = $1 ORDER BY id",
    )
    .bind(device)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(action, task)| {
            let task = if action == "cancel" {
                json!(task)
            } else {
                Value::Null
            };
            (action, task)
        })
        .collect()
}

/// The calls `device` accepted, in the order it got them.
fn accepted_calls(recorder: &FakeRecorder, device: &str) -> Vec<(String, Value)> {
    recorder
        .calls()
        .into_iter()
        .filter(|c| c.device_id == device && c.accepted())
        .map(|c| {
            (
                c.action,
                c.body.get("task_id").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

async fn unpublished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM recorder_outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn states(pool: &PgPool, device: &str) -> Vec<(String, i32)> {
    sqlx::query_as(
        "SELECT COALESCE(d.status, 'none'), COALESCE(d.attempts, 0) FROM recorder_outbox o \
         LEFT JOIN recorder_deliveries d USING (notification_id) \
         WHERE o.device_id = $1 ORDER BY o.id",
    )
    .bind(device)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Relays through `publisher` until nothing is left unpublished (each run is what one
/// scheduled relay does).
async fn relay_until_published(pool: &PgPool, publisher: &SqsPublisher) {
    for _ in 0..20 {
        relay(publisher, 100, RELAY_MAX_ROUNDS).await.unwrap();
        if unpublished(pool).await == 0 {
            return;
        }
    }
    panic!("rows are still unpublished");
}

/// Polls like Lambda's event source until `done` or `secs` pass.
async fn poll_until(
    queue: &TestQueue,
    notifier: &RecorderNotifier,
    secs: u64,
    mut done: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(Instant::now() < deadline, "not done within {secs} s");
        poll_once(&queue.client, &queue.pair.url, notifier, 1)
            .await
            .unwrap();
    }
}

/// The Lambda record of `notification`'s message among `messages`, received `receives` times.
fn record_for(
    messages: &[aws_sdk_sqs::types::Message],
    notification: &str,
    receives: u32,
) -> aws_lambda_events::event::sqs::SqsMessage {
    let message = messages
        .iter()
        .find(|m| m.body().unwrap().contains(notification))
        .unwrap();
    let mut record = as_lambda_record(message);
    record
        .attributes
        .insert("ApproximateReceiveCount".to_owned(), receives.to_string());
    record
}

/// Accepted entries of `device`, as notification ids in the order SQS accepted them.
fn accepted_order(faults: &SqsFaults, device: &str) -> Vec<String> {
    faults
        .accepted()
        .into_iter()
        .filter(|e| e.body["device_id"] == json!(device))
        .map(|e| e.body["notification_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A refused `SendMessageBatch`: the device's first command failed, so nothing later of that
/// device may be accepted before it. (Sending in chunks of ten regardless of the device, the
/// twelfth command went out in the second chunk while the first ten were refused.)
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_refused_batch_call_never_lets_a_later_command_of_a_device_go_first(pool: PgPool) {
    finalized(&pool, &[("ready", 6), ("in_progress", 6)]).await;
    let queue = TestQueue::faithful("order-call", 5, 2).await;
    let faults = SqsFaults::start(&faithful_sqs_endpoint()).await;
    let publisher = SqsPublisher::new(faults.client().await, queue.pair.url.clone(), app_db(&pool));
    faults.fail_batch_call(1);

    relay_until_published(&pool, &publisher).await;

    for device in ["axon-a", "axon-b"] {
        assert_eq!(
            accepted_order(&faults, device),
            outbox_order(&pool, device).await,
            "{device}"
        );
    }
    let recorder = FakeRecorder::start().await;
    let notifier = recorder.notifier_for(&pool, &queue);
    let expected = expected_calls(&pool, "axon-a").await;
    poll_until(&queue, &notifier, 30, async || {
        accepted_calls(&recorder, "axon-a").len() == expected.len()
    })
    .await;
    assert_eq!(accepted_calls(&recorder, "axon-a"), expected);
}

/// SQS refuses one entry of a batch (its own fault): that device's later commands wait for it;
/// other devices go on. (Reading each entry's outcome alone, the later commands were accepted
/// ahead of the refused one.)
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_refused_entry_holds_back_its_device_later_commands_and_nothing_else(pool: PgPool) {
    finalized(&pool, &[("ready", 2), ("in_progress", 2)]).await;
    let order = outbox_order(&pool, "axon-a").await;
    let queue = TestQueue::faithful("order-entry", 5, 2).await;
    let faults = SqsFaults::start(&faithful_sqs_endpoint()).await;
    let publisher = SqsPublisher::new(faults.client().await, queue.pair.url.clone(), app_db(&pool));
    let second = order[1].clone();
    faults.refuse_entries(1, move |body| body["notification_id"] == json!(second));

    // One round, as one relay lease and send: the next round retries the refused one.
    let first_run = relay(&publisher, 100, 1).await.unwrap();
    assert_eq!(first_run.failed, 1, "{first_run:?}");
    assert_eq!(
        accepted_order(&faults, "axon-a"),
        order[..1],
        "nothing after the refused one"
    );
    assert_eq!(
        accepted_order(&faults, "axon-b").len(),
        1,
        "other devices go on"
    );

    relay_until_published(&pool, &publisher).await;
    assert_eq!(accepted_order(&faults, "axon-a"), order);
    let refused: (i32, i32) = sqlx::query_as(
        "SELECT publish_rejections, publish_attempts FROM recorder_outbox WHERE notification_id = $1",
    )
    .bind(&order[1])
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(refused, (1, 2), "refused once, then sent");
}

/// Messages handed over out of order (moto redelivers a FIFO group's messages so, and a
/// consumer must not trust any transport for it): a later command waits, reported failed and
/// shown `held_back`, until the earlier one is delivered.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_command_handed_over_before_an_earlier_one_waits_for_it(pool: PgPool) {
    let s = finalized(&pool, &[("ready", 1), ("in_progress", 1)]).await;
    let queue = TestQueue::create("order-reorder", 5, 30).await;
    relay_until_published(&pool, &queue.publisher(&pool)).await;
    let messages = queue.drain(&queue.pair.url).await;
    let order = outbox_order(&pool, "axon-a").await;
    let record_of = |notification: &str| record_for(&messages, notification, 1);
    let recorder = FakeRecorder::start().await;
    let notifier = recorder.notifier(&pool);

    let later = notifier.handle(sqs_event(vec![record_of(&order[1])])).await;
    assert_eq!(later.batch_item_failures.len(), 1, "the later one waits");
    assert!(recorder.calls().is_empty());
    assert_eq!(states(&pool, "axon-a").await[1].0, "held_back");
    let view = get(
        &router(pool.clone()),
        &format!("/api/v1/orders/{}/notifications", s.order_id),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(view.body["summary"]["held_back"], json!(1), "{}", view.text);

    let earlier = notifier.handle(sqs_event(vec![record_of(&order[0])])).await;
    assert!(earlier.batch_item_failures.is_empty());
    let later = notifier.handle(sqs_event(vec![record_of(&order[1])])).await;
    assert!(later.batch_item_failures.is_empty());
    assert_eq!(
        accepted_calls(&recorder, "axon-a"),
        expected_calls(&pool, "axon-a").await
    );
}

/// A device that never answers: its whole group leaves for the DLQ together (LocalStack moves
/// a FIFO group as SQS does), and every member shows `dead_lettered`, not only the head.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_group_that_dead_letters_shows_every_member_dead_lettered(pool: PgPool) {
    let s = finalized(&pool, &[("ready", 2), ("in_progress", 1)]).await;
    let queue = TestQueue::faithful("order-dlq", 2, 1).await;
    relay_until_published(&pool, &queue.publisher(&pool)).await;
    let recorder = FakeRecorder::start().await;
    recorder.set_behavior("axon-a", 503, Duration::ZERO);
    let notifier = recorder.notifier_for(&pool, &queue);
    poll_until(&queue, &notifier, 40, async || {
        queue.message_count(&queue.pair.dlq_url).await == 3
    })
    .await;

    assert_eq!(
        states(&pool, "axon-a").await,
        [
            ("dead_lettered".to_owned(), 2),
            ("dead_lettered".to_owned(), 0),
            ("dead_lettered".to_owned(), 0)
        ],
        "the head was tried maxReceiveCount times, the others waited behind it"
    );
    let view = get(
        &router(pool.clone()),
        &format!("/api/v1/orders/{}/notifications", s.order_id),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(
        view.body["summary"]["dead_lettered"],
        json!(3),
        "{}",
        view.text
    );
    assert_eq!(view.body["summary"]["delivered"], json!(1), "{}", view.text);
}

/// The admin presses redrive the moment the head shows `dead_lettered`, while its message is
/// still in the source queue (SQS moves it to the DLQ only at the receive after its visibility
/// timeout): every command of the device is then delivered exactly once, in order, and later
/// redrives move the stale copies without calling the device again.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_redrive_pressed_at_once_delivers_each_command_exactly_once(pool: PgPool) {
    finalized(&pool, &[("ready", 1), ("in_progress", 1)]).await;
    let queue = TestQueue::faithful("order-redrive", 2, 2).await;
    relay_until_published(&pool, &queue.publisher(&pool)).await;
    let recorder = FakeRecorder::start().await;
    recorder.set_behavior("axon-a", 503, Duration::ZERO);
    let notifier = recorder.notifier_for(&pool, &queue);
    poll_until(&queue, &notifier, 40, async || {
        states(&pool, "axon-a").await[0].0 == "dead_lettered"
    })
    .await;
    recorder.set_behavior("axon-a", 200, Duration::ZERO);

    let route = DeadLetterRoute::new(queue.client.clone(), queue.pair.url.clone());
    let router = keystone_local::routes().with_state(
        state(pool.clone())
            .with_redrive(Arc::new(route))
            .with_outbox(Arc::new(queue.publisher(&pool))),
    );
    let redrive = async || {
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
    let first = redrive().await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(
        first.body["outbox_rows_requeued"],
        json!(2),
        "{}",
        first.text
    );

    let expected = expected_calls(&pool, "axon-a").await;
    poll_until(&queue, &notifier, 40, async || {
        accepted_calls(&recorder, "axon-a").len() >= expected.len()
    })
    .await;
    // The stale copies reach the DLQ at the receives after their visibility timeout.
    poll_until(&queue, &notifier, 20, async || {
        queue.message_count(&queue.pair.dlq_url).await >= 2
    })
    .await;
    let again = redrive().await;
    assert_eq!(
        again.body["outbox_rows_requeued"],
        json!(0),
        "{}",
        again.text
    );
    assert_eq!(again.body["dead_letters_left"], json!(0), "{}", again.text);
    for _ in 0..4 {
        poll_once(&queue.client, &queue.pair.url, &notifier, 1)
            .await
            .unwrap();
    }
    assert_eq!(
        accepted_calls(&recorder, "axon-a"),
        expected,
        "each exactly once, in order"
    );
    assert!(
        states(&pool, "axon-a")
            .await
            .iter()
            .all(|(state, _)| state == "delivered"),
        "{:?}",
        states(&pool, "axon-a").await
    );
}

/// A dead-lettered `clear` redriven after a later command of its device was delivered would
/// clear a newer ready task: it is superseded, never sent. A dead-lettered `cancel` is still
/// delivered (cancelling twice is harmless).
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_redriven_clear_overtaken_by_a_later_command_is_superseded(pool: PgPool) {
    let s = Scenario::new(&pool, 1, 1, 0).await;
    s.add_axon_batch("AX-A", "axon-a", &[("ready", 1), ("in_progress", 1)])
        .await;
    s.add_axon_batch("AX-C", "axon-c", &[("in_progress", 1), ("ready", 1)])
        .await;
    let response = complete(
        &router(pool.clone()),
        &s.seat.token,
        s.batch_id,
        s.group_a.body(1),
        &[],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let queue = TestQueue::create("order-supersede", 2, 30).await;
    relay_until_published(&pool, &queue.publisher(&pool)).await;
    let messages = queue.drain(&queue.pair.url).await;
    let record = |notification: &str, receives: u32| record_for(&messages, notification, receives);
    let recorder = FakeRecorder::start().await;
    let notifier = recorder.notifier_for(&pool, &queue);
    let a = outbox_order(&pool, "axon-a").await;
    let c = outbox_order(&pool, "axon-c").await;
    // Each device's first command fails on its last allowed receive; the second goes on.
    recorder.fail_next("axon-a", 1, 503);
    recorder.fail_next("axon-c", 1, 503);
    notifier
        .handle(sqs_event(vec![record(&a[0], 2), record(&c[0], 2)]))
        .await;
    notifier
        .handle(sqs_event(vec![record(&a[1], 1), record(&c[1], 1)]))
        .await;
    assert_eq!(
        (states(&pool, "axon-a").await, states(&pool, "axon-c").await),
        (
            vec![("dead_lettered".to_owned(), 1), ("delivered".to_owned(), 1)],
            vec![("dead_lettered".to_owned(), 1), ("delivered".to_owned(), 1)]
        )
    );

    // Lambda deletes what it handled, and SQS moves the two failures to the DLQ: either way
    // they leave the queue, which unlocks the devices' groups.
    for message in &messages {
        queue
            .client
            .delete_message()
            .queue_url(&queue.pair.url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    let requeued = keystone_store::notifications::requeue_for_redrive(&app_db(&pool), &[])
        .await
        .unwrap();
    assert_eq!(requeued.outbox_ids.len(), 2);
    relay_until_published(&pool, &queue.publisher(&pool)).await;
    let redriven = queue.drain(&queue.pair.url).await;
    assert_eq!(redriven.len(), 2);
    let calls_before = recorder.calls().len();
    let outcome = notifier
        .handle(sqs_event(redriven.iter().map(as_lambda_record).collect()))
        .await;
    assert!(outcome.batch_item_failures.is_empty());
    let new_calls: Vec<_> = recorder.calls().into_iter().skip(calls_before).collect();
    assert_eq!(new_calls.len(), 1, "{new_calls:?}");
    assert_eq!(
        (
            new_calls[0].device_id.as_str(),
            new_calls[0].action.as_str()
        ),
        ("axon-c", "cancel")
    );
    assert_eq!(states(&pool, "axon-a").await[0].0, "superseded");
    assert_eq!(states(&pool, "axon-c").await[0].0, "delivered");
    let view = get(
        &router(pool.clone()),
        &format!("/api/v1/orders/{}/notifications", s.order_id),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(
        view.body["summary"]["superseded"],
        json!(1),
        "{}",
        view.text
    );
}

/// SPEC §7 "Trace context": a caller's malformed `X-Amzn-Trace-Id` is dropped (SQS would refuse
/// it as `AWSTraceHeader`, and refusals park a device's commands); a well-formed one travels
/// in canonical form; a malformed context stored before headers were checked is not sent.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_forged_trace_header_never_reaches_sqs(pool: PgPool) {
    let queue = TestQueue::create("order-trace", 5, 30).await;
    let faults = SqsFaults::start(&sqs_endpoint()).await;
    let publisher = SqsPublisher::new(faults.client().await, queue.pair.url.clone(), app_db(&pool));
    let router =
        keystone_local::routes().with_state(state(pool.clone()).with_outbox(Arc::new(publisher)));
    let valid = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    for (operator, device, header) in [
        ("AX-F", "axon-forged", "Root=1-forged;Evil=<script>"),
        ("AX-V", "axon-valid", valid),
    ] {
        let s = Scenario::new(&pool, 1, 1, 0).await;
        s.add_axon_batch(operator, device, &[("ready", 1)]).await;
        let response = complete(
            &router,
            &s.seat.token,
            s.batch_id,
            s.group_a.body(1),
            &[("x-amzn-trace-id", header)],
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    let sent = |device: &str| {
        faults
            .accepted()
            .into_iter()
            .find(|e| e.body["device_id"] == json!(device))
            .unwrap_or_else(|| panic!("{device} was not sent"))
    };
    let forged = sent("axon-forged");
    assert_eq!(forged.trace_header, None);
    let context = forged.trace_attribute.unwrap();
    assert!(context.starts_with("Keystone-Request="), "{context}");
    assert_eq!(sent("axon-valid").trace_header.as_deref(), Some(valid));
    let stored: Vec<String> = sqlx::query_scalar("SELECT trace_context FROM recorder_outbox")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(stored.iter().all(|c| !c.contains("forged")), "{stored:?}");

    // A row stored with a malformed context (before headers were checked) goes out without it.
    sqlx::query(
        "UPDATE recorder_outbox SET trace_context = 'Root=1-forged;Evil=1', published_at = NULL, \
             publish_generation = 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    let before = faults.accepted().len();
    relay_until_published(
        &pool,
        &SqsPublisher::new(faults.client().await, queue.pair.url.clone(), app_db(&pool)),
    )
    .await;
    let resent = faults.accepted();
    assert_eq!(resent.len(), before + 2);
    assert!(
        resent[before..]
            .iter()
            .all(|e| e.trace_header.is_none() && e.trace_attribute.is_none()),
        "{:?}",
        &resent[before..]
    );
}

/// SPEC §7 "Retention": the relay removes delivered (and superseded) commands older than the
/// retention, with their delivery records, in small batches; nothing unpublished, parked,
/// undelivered or dead-lettered goes, whatever its age.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn retention_removes_old_settled_commands_and_nothing_else(pool: PgPool) {
    finalized(&pool, &[("ready", 3), ("in_progress", 3)]).await;
    let queue = TestQueue::create("order-retention", 5, 30).await;
    relay_until_published(&pool, &queue.publisher(&pool)).await;
    let ids: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, notification_id FROM recorder_outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(ids.len(), 7);
    // Seven commands, all 40 days old: delivered, superseded, dead-lettered, retrying,
    // held back, unpublished, and one delivered yesterday.
    let statuses = [
        Some("delivered"),
        Some("superseded"),
        Some("dead_lettered"),
        Some("in_progress"),
        Some("held_back"),
        None,
        Some("delivered"),
    ];
    for ((id, notification), status) in ids.iter().zip(statuses) {
        if let Some(status) = status {
            sqlx::query(
                "INSERT INTO recorder_deliveries (notification_id, device_id, status, attempts) \
                 VALUES ($1, 'axon-a', $2, 1)",
            )
            .bind(notification)
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
        }
        let settled = matches!(status, Some("delivered" | "superseded" | "dead_lettered"));
        sqlx::query(
            "UPDATE recorder_outbox SET created_at = now() - interval '40 days', \
                 settled_at = CASE WHEN $2 THEN now() - interval '40 days' END, \
                 published_at = CASE WHEN $3 THEN NULL ELSE published_at END WHERE id = $1",
        )
        .bind(id)
        .bind(settled)
        .bind(status.is_none())
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE recorder_outbox SET settled_at = now() - interval '1 day' WHERE id = $1")
        .bind(ids[6].0)
        .execute(&pool)
        .await
        .unwrap();
    // A delivery record nothing in the outbox explains, old, and a young one.
    sqlx::query(
        "INSERT INTO recorder_deliveries (notification_id, device_id, status, updated_at) VALUES \
             ('elsewhere:old', 'x', 'delivered', now() - interval '40 days'), \
             ('elsewhere:new', 'x', 'delivered', now())",
    )
    .execute(&pool)
    .await
    .unwrap();

    let outcome = relay(
        &queue
            .publisher(&pool)
            .with_retention(Duration::from_secs(30 * 86_400)),
        100,
        RELAY_MAX_ROUNDS,
    )
    .await
    .unwrap();

    let left: Vec<String> =
        sqlx::query_scalar("SELECT notification_id FROM recorder_outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected: Vec<String> = ids[2..].iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(left, expected, "{outcome:?}");
    let records: Vec<String> =
        sqlx::query_scalar("SELECT notification_id FROM recorder_deliveries ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!records.contains(&ids[0].1) && !records.contains(&ids[1].1));
    assert!(!records.contains(&"elsewhere:old".to_owned()));
    assert!(records.contains(&"elsewhere:new".to_owned()));
    assert_eq!(records.len(), 4 + 1, "{records:?}");
    assert_eq!(
        outcome.purged_notifications, 5,
        "two commands, their records, one stray"
    );
}

/// Publishers at once: while one publisher holds a device's oldest row (a relay run's lease),
/// another (the inline publish after a commit, or a second relay) takes none of that device's
/// later rows, and still takes other devices' rows. (Leasing rows by id alone, the inline
/// publish sent a device's new rows while its older ones were leased elsewhere.)
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_device_row_leased_elsewhere_holds_back_its_later_rows(pool: PgPool) {
    finalized(&pool, &[("ready", 2), ("in_progress", 1)]).await;
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, device_id FROM recorder_outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let db = app_db(&pool);
    let lease = Duration::from_secs(60);
    let oldest_of_a = rows.iter().find(|(_, d)| d == "axon-a").unwrap().0;
    let relay_lease = keystone_store::outbox::lease_by_ids(&db, &[oldest_of_a], lease)
        .await
        .unwrap();
    assert_eq!(relay_lease.len(), 1);

    let all: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
    let inline = keystone_store::outbox::lease_by_ids(&db, &all, lease)
        .await
        .unwrap();
    assert_eq!(
        inline
            .iter()
            .map(|r| r.device_id.as_str())
            .collect::<Vec<_>>(),
        ["axon-b"],
        "only the other device's row"
    );
    let relay = keystone_store::outbox::lease_unpublished(&db, 100, lease)
        .await
        .unwrap();
    assert!(relay.is_empty(), "{relay:?}");

    // Once the oldest is published, the next ones of the device may go, in order.
    keystone_store::outbox::mark_published(&db, &[oldest_of_a])
        .await
        .unwrap();
    let next = keystone_store::outbox::lease_unpublished(&db, 100, lease)
        .await
        .unwrap();
    let expected: Vec<i64> = rows
        .iter()
        .filter(|(id, d)| d == "axon-a" && *id != oldest_of_a)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
}
