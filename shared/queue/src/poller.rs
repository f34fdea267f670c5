//! What Lambda's SQS event source mapping does, for running the consumer outside Lambda (the
//! local stack, tests): receive a batch, hand it to the consumer as an SQS event, delete the
//! messages it did not report as failed.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use std::time::Duration;

use crate::RecorderNotifier;

/// A received SQS message as the Lambda SQS event carries it.
pub fn lambda_record(message: &Message) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    // As Lambda's event source passes them: MessageGroupId, ApproximateReceiveCount, …
    record.attributes = message
        .attributes()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    record
}

/// A Lambda SQS event of these records.
pub fn sqs_event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

/// Counts of one poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollOutcome {
    pub received: usize,
    pub failed: usize,
}

/// Receives up to ten messages (long-polling `wait_secs`), runs the consumer, deletes the
/// successes. Failed messages become visible again after the visibility timeout, and move to
/// the DLQ after `maxReceiveCount` receives.
///
/// # Errors
/// SQS failures, as text with their context.
pub async fn poll_once(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    notifier: &RecorderNotifier,
    wait_secs: i32,
) -> Result<PollOutcome, String> {
    // A long poll outlasts the client's short per-attempt timeout (meant for publishing), so
    // this call gets its own: the wait plus a margin.
    let wait = Duration::from_secs(u64::try_from(wait_secs.max(0)).unwrap_or(0));
    let timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(wait + Duration::from_secs(5))
        .operation_timeout(wait + Duration::from_secs(10))
        .build();
    let messages = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .customize()
        .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
        .send()
        .await
        .map_err(|e| DisplayErrorContext(&e).to_string())?
        .messages
        .unwrap_or_default();
    if messages.is_empty() {
        return Ok(PollOutcome::default());
    }
    let response = notifier
        .handle(sqs_event(messages.iter().map(lambda_record).collect()))
        .await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !failed.contains(&m.message_id().unwrap_or_default()))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle()?)
                .build()
                .ok()
        })
        .collect();
    if !entries.is_empty() {
        let output = client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        for failure in output.failed() {
            tracing::warn!(code = failure.code(), "could not delete a handled message");
        }
    }
    Ok(PollOutcome {
        received: messages.len(),
        failed: failed.len(),
    })
}
