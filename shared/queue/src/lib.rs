//! Recorder notifications after an order completes (SPEC §7): the message, the publisher that
//! sends outbox rows to the SQS FIFO queue (inline after commit, and from the scheduled relay),
//! and the `recorder-notifier` consumer that calls each device's Axon recorder once.

pub mod config;
pub mod consumer;
pub mod dead_letters;
pub mod message;
pub mod poller;
pub mod provision;
pub mod publisher;
pub mod relay;

pub use config::{NotifierConfig, QueueConfig, sqs_client};
pub use consumer::RecorderNotifier;
pub use message::{RecorderAction, RecorderCommand};
pub use publisher::{PublishReport, SqsPublisher};
pub use relay::{RelayOutcome, relay, relay_until};

/// The moment an invocation whose deadline is `deadline` (the Lambda context's) must stop
/// taking new work so that what it started still finishes: `reserve` before the deadline.
pub fn stop_taking_work_at(
    deadline: std::time::SystemTime,
    reserve: std::time::Duration,
) -> std::time::Instant {
    let left = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    std::time::Instant::now() + left.saturating_sub(reserve)
}

use std::sync::Arc;

use keystone_store::config::ConfigError;

/// The publisher a function that finalizes orders sends with right after commit, from
/// `KEYSTONE_QUEUE_URL` (and `AWS_ENDPOINT_URL_SQS`), built once per container.
///
/// # Errors
/// A missing `KEYSTONE_QUEUE_URL`.
pub async fn publisher_from_env(
    db: keystone_store::Database,
) -> Result<Arc<SqsPublisher>, ConfigError> {
    let queue = QueueConfig::from_env()?;
    let client = sqs_client(queue.endpoint_url.as_deref()).await;
    Ok(Arc::new(
        SqsPublisher::new(client, queue.queue_url, db).with_park_after(queue.park_after),
    ))
}
