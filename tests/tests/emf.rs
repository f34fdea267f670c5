//! SPEC §9 "Operations": the EMF lines of a complete → finalize → deliver run carry the right
//! figures. Its own test binary: the metrics recorder is process-wide.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use keystone_queue::relay;
use keystone_queue::relay::RELAY_MAX_ROUNDS;
use keystone_tests::notify::*;
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Every metric value in the EMF documents, by metric name and the document's dimensions
/// (besides `Function`); histogram samples are counted, counters and gauges summed.
fn figures(emf: &str) -> BTreeMap<(String, String), f64> {
    let mut figures = BTreeMap::new();
    for line in emf.lines().filter(|l| !l.trim().is_empty()) {
        let document: Value = serde_json::from_str(line).unwrap();
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Keystone", "{line}");
        assert!(document["_aws"]["Timestamp"].is_u64(), "{line}");
        let dimensions: Vec<String> = directive["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .filter(|d| d != "Function")
            .map(|d| format!("{d}={}", document[&d].as_str().unwrap()))
            .collect();
        assert_eq!(document["Function"], "emf-test", "{line}");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap().to_owned();
            let value = match &document[&name] {
                Value::Array(samples) => samples.len() as f64,
                other => other.as_f64().unwrap(),
            };
            *figures.entry((name, dimensions.join(","))).or_insert(0.0) += value;
        }
    }
    figures
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_complete_finalize_deliver_run_emits_its_figures(pool: PgPool) {
    let collector = keystone_http::telemetry::install("emf-test").unwrap();
    let _ = collector.flush(std::io::sink());
    // Target 2: completing two tasks finalizes the order, cancelling three tasks on two Axon
    // robots (two ready, one in progress).
    let s = Scenario::new(&pool, 2, 2, 0).await;
    for (operator, device, statuses) in [
        ("AX-1", "axon-1", &["ready", "in_progress"][..]),
        ("AX-2", "axon-2", &["ready"][..]),
    ] {
        let seat = s.add_seat(operator, None, Some(device)).await;
        let batch = s.add_batch(s.order_id, seat.workstation_id).await;
        for status in statuses {
            s.add_tasks(batch, s.group_b, 1, status).await;
        }
    }
    let queue = TestQueue::create("emf", 5, 30).await;
    let router = keystone_local::routes()
        .with_state(state(pool.clone()).with_outbox(Arc::new(queue.publisher(&pool))));
    let recorder = FakeRecorder::start().await;

    let refused = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(5), &[]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.body["order"]["status"], json!("completed"));
    relay(&queue.publisher(&pool), 10, RELAY_MAX_ROUNDS)
        .await
        .unwrap();
    let messages = queue.drain(&queue.pair.url).await;
    let response = recorder
        .notifier_for(&pool, &queue)
        .handle(sqs_event(messages.iter().map(as_lambda_record).collect()))
        .await;
    assert!(response.batch_item_failures.is_empty());

    let mut emf = Vec::new();
    collector.flush(&mut emf).unwrap();
    let figures = figures(&String::from_utf8(emf).unwrap());
    let get = |name: &str, dimensions: &str| {
        figures
            .get(&(name.to_owned(), dimensions.to_owned()))
            .copied()
            .unwrap_or_else(|| panic!("{name} [{dimensions}] missing from {figures:#?}"))
    };
    let route = "Route=/api/v1/batches/{id}/complete-tasks";
    assert_eq!(get("TasksCompleted", ""), 2.0);
    assert_eq!(get("OrdersFinalized", ""), 1.0);
    assert_eq!(get("NotificationsEnqueued", ""), 3.0);
    assert_eq!(
        get("NotificationsPublished", ""),
        3.0,
        "inline, right after the commit"
    );
    assert_eq!(get("NotificationsDelivered", ""), 3.0);
    assert_eq!(get("RecorderRpcLatency", ""), 3.0, "one sample per RPC");
    assert_eq!(
        get("OutboxOldestUnpublishedAgeSeconds", ""),
        0.0,
        "nothing left to publish"
    );
    assert_eq!(get("OutboxParkedRows", ""), 0.0);
    assert_eq!(get("Requests", &format!("{route},StatusClass=2xx")), 1.0);
    assert_eq!(get("Requests", &format!("{route},StatusClass=4xx")), 1.0);
    assert_eq!(
        get("RequestLatency", &format!("{route},StatusClass=2xx")),
        1.0
    );
    assert!(
        !figures
            .keys()
            .any(|(name, _)| name == "NotificationsDeadLettered")
    );
}
