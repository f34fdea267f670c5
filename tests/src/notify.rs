//! Notification test support: a fresh FIFO queue pair per test on a real local SQS server
//! (`moto_server`, lax but recording and reordering, or LocalStack's SQS, faithful to SQS's
//! FIFO, dedup and DLQ behaviour; both started by tests/run.sh), and a fake Axon recorder that
//! records every RPC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use keystone_queue::provision::{QueuePair, create_queue_pair};
use keystone_queue::{NotifierConfig, RecorderNotifier, SqsPublisher, sqs_client};
use keystone_store::Database;
use serde_json::Value;
use sqlx::PgPool;

/// The local SQS endpoint tests/run.sh started.
#[track_caller]
pub fn sqs_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_SQS")
        .expect("AWS_ENDPOINT_URL_SQS is unset: run the tests through tests/run.sh, which starts moto_server")
}

/// The faithful SQS endpoint (LocalStack's) tests/run.sh started.
#[track_caller]
pub fn faithful_sqs_endpoint() -> String {
    std::env::var("KEYSTONE_FAITHFUL_SQS_URL").expect(
        "KEYSTONE_FAITHFUL_SQS_URL is unset: run the tests through tests/run.sh, which starts LocalStack's SQS",
    )
}

/// An SQS client whose endpoint is a loopback port nobody listens on: SQS unreachable.
pub async fn unreachable_sqs_client() -> aws_sdk_sqs::Client {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port");
    sqs_client(Some(&format!("http://127.0.0.1:{port}"))).await
}

/// A queue pair of this test's own.
pub struct TestQueue {
    pub client: aws_sdk_sqs::Client,
    pub pair: QueuePair,
}

impl TestQueue {
    /// Creates `{prefix}-{random}.fifo` and its DLQ.
    pub async fn create(
        prefix: &str,
        max_receive_count: u32,
        visibility_timeout_secs: u32,
    ) -> Self {
        Self::create_on(
            &sqs_endpoint(),
            prefix,
            max_receive_count,
            visibility_timeout_secs,
        )
        .await
    }

    /// [`TestQueue::create`] on the faithful SQS (LocalStack's).
    pub async fn faithful(
        prefix: &str,
        max_receive_count: u32,
        visibility_timeout_secs: u32,
    ) -> Self {
        Self::create_on(
            &faithful_sqs_endpoint(),
            prefix,
            max_receive_count,
            visibility_timeout_secs,
        )
        .await
    }

    /// [`TestQueue::create`] on the SQS server at `endpoint`.
    pub async fn create_on(
        endpoint: &str,
        prefix: &str,
        max_receive_count: u32,
        visibility_timeout_secs: u32,
    ) -> Self {
        let client = sqs_client(Some(endpoint)).await;
        let name = format!("{prefix}-{}", rand::random::<u32>());
        let pair = create_queue_pair(&client, &name, max_receive_count, visibility_timeout_secs)
            .await
            .expect("queues are created");
        Self { client, pair }
    }

    pub fn publisher(&self, pool: &PgPool) -> SqsPublisher {
        self.publisher_on(crate::app_db(pool))
    }

    /// A publisher over a database handle of the test's choosing (a proxy, other limits).
    pub fn publisher_on(&self, db: Database) -> SqsPublisher {
        SqsPublisher::new(self.client.clone(), self.pair.url.clone(), db)
    }

    /// Receives until the queue stays empty for one short poll.
    pub async fn drain(&self, url: &str) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let output = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receive");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            all.extend(messages);
        }
    }

    /// Messages waiting in a queue. (FIFO queues hold back a group's later messages while
    /// earlier ones are in flight, so receiving cannot count them.)
    pub async fn message_count(&self, url: &str) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages;
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(ApproximateNumberOfMessages)
            .send()
            .await
            .expect("queue attributes");
        output
            .attributes()
            .and_then(|a| a.get(&ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())
            .expect("a message count")
    }
}

pub use keystone_queue::poller::{lambda_record as as_lambda_record, sqs_event};

/// A record with any body, for malformed-message tests.
pub fn record_with_body(message_id: &str, body: Option<&str>) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message_id.to_owned());
    record.body = body.map(str::to_owned);
    record
}

/// One RPC the fake recorder received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderCall {
    pub device_id: String,
    pub action: String,
    pub body: Value,
    /// What the fake answered.
    pub status: u16,
}

impl RecorderCall {
    /// Accepted by the device (2xx, or 400/409: nothing left to do).
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status) || self.status == 400 || self.status == 409
    }
}

/// How a fake device answers.
#[derive(Debug, Clone, Copy)]
pub struct DeviceBehavior {
    pub status: u16,
    pub delay: Duration,
}

#[derive(Default)]
struct FakeRecorderState {
    calls: Mutex<Vec<RecorderCall>>,
    behaviors: Mutex<HashMap<String, DeviceBehavior>>,
    /// Calls still to fail, by device, before its behavior applies.
    failures_left: Mutex<HashMap<String, (u32, u16)>>,
}

/// A fake fleet of Axon recorders on one loopback port: `{base}/{device_id}/rpc/{action}`.
#[derive(Clone)]
pub struct FakeRecorder {
    pub url_template: String,
    state: Arc<FakeRecorderState>,
}

impl FakeRecorder {
    pub async fn start() -> Self {
        let state = Arc::new(FakeRecorderState::default());
        let app = axum::Router::new()
            .route("/{device_id}/rpc/{action}", post(rpc))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url_template: format!("http://127.0.0.1:{port}/{{device_id}}"),
            state,
        }
    }

    /// Makes `device_id` answer with `status` after `delay` (a 3xx points to
    /// `/elsewhere-{device_id}/rpc/redirected`).
    pub fn set_behavior(&self, device_id: &str, status: u16, delay: Duration) {
        self.state
            .behaviors
            .lock()
            .expect("lock")
            .insert(device_id.to_owned(), DeviceBehavior { status, delay });
    }

    /// Makes `device_id`'s next `calls` calls answer `status`, then its behavior again.
    pub fn fail_next(&self, device_id: &str, calls: u32, status: u16) {
        self.state
            .failures_left
            .lock()
            .expect("lock")
            .insert(device_id.to_owned(), (calls, status));
    }

    pub fn calls(&self) -> Vec<RecorderCall> {
        self.state.calls.lock().expect("lock").clone()
    }

    /// Hands the received messages to a consumer twice, as SQS redelivery can, asserting
    /// neither round reports a failure; answers the device calls made in all.
    pub async fn deliver_twice(&self, pool: &PgPool, messages: &[Message]) -> usize {
        let records: Vec<_> = messages.iter().map(as_lambda_record).collect();
        let notifier = self.notifier(pool);
        for round in 0..2 {
            let failures = notifier
                .handle(sqs_event(records.clone()))
                .await
                .batch_item_failures;
            assert!(failures.is_empty(), "round {round}: {failures:?}");
        }
        self.calls().len()
    }

    /// A consumer calling this fleet, with a short RPC timeout.
    pub fn notifier(&self, pool: &PgPool) -> RecorderNotifier {
        self.notifier_on(crate::app_db(pool))
    }

    /// [`FakeRecorder::notifier`] that knows `queue`'s dead-letter side, as the Lambda does.
    pub fn notifier_for(&self, pool: &PgPool, queue: &TestQueue) -> RecorderNotifier {
        self.notifier(pool)
            .with_dead_letters(keystone_queue::dead_letters::DeadLetterRoute::new(
                queue.client.clone(),
                queue.pair.url.clone(),
            ))
    }

    /// A consumer over a database handle of the test's choosing.
    pub fn notifier_on(&self, db: Database) -> RecorderNotifier {
        let config = NotifierConfig {
            rpc_url_template: self.url_template.clone(),
            rpc_timeout: Duration::from_millis(500),
            lease: Duration::from_secs(2),
        };
        RecorderNotifier::new(db, config).expect("HTTP client")
    }
}

async fn rpc(
    State(state): State<Arc<FakeRecorderState>>,
    Path((device_id, action)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let behavior = state
        .behaviors
        .lock()
        .expect("lock")
        .get(&device_id)
        .copied();
    let mut behavior = behavior.unwrap_or(DeviceBehavior {
        status: 200,
        delay: Duration::ZERO,
    });
    if let Some((left, status)) = state
        .failures_left
        .lock()
        .expect("lock")
        .get_mut(&device_id)
        .filter(|(left, _)| *left > 0)
    {
        *left -= 1;
        behavior.status = *status;
    }
    state.calls.lock().expect("lock").push(RecorderCall {
        device_id: device_id.clone(),
        action,
        body,
        status: behavior.status,
    });
    tokio::time::sleep(behavior.delay).await;
    let status = StatusCode::from_u16(behavior.status).unwrap_or(StatusCode::OK);
    if status.is_redirection() {
        // Sends the command on to another device of the fleet, as a hijacked recorder might.
        let location = format!("/elsewhere-{device_id}/rpc/{}", "redirected");
        return (status, [(axum::http::header::LOCATION, location)]).into_response();
    }
    status.into_response()
}
