//! Creating the FIFO queue and its dead-letter queue where none is configured: the local
//! stack and the tests (in AWS the SAM template owns them).

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::QueueAttributeName;

/// A FIFO queue and the DLQ its messages move to after `maxReceiveCount` receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePair {
    pub url: String,
    pub dlq_url: String,
}

/// Why the queues could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create queue {queue}: {reason}")]
pub struct ProvisionError {
    pub queue: String,
    pub reason: String,
}

/// Creates (or finds, `CreateQueue` being idempotent for equal attributes) `{name}.fifo` and
/// `{name}-dlq.fifo`.
///
/// # Errors
/// Any SQS failure, with its context.
pub async fn create_queue_pair(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout_secs: u32,
) -> Result<QueuePair, ProvisionError> {
    let dlq_name = format!("{name}-dlq.fifo");
    let dlq_url = client
        .create_queue()
        .queue_name(&dlq_name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .map_err(|e| failed(&dlq_name, &e))?
        .queue_url
        .unwrap_or_default();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed(&dlq_name, &e))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let queue_name = format!("{name}.fifo");
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count.to_string(),
    });
    let url = client
        .create_queue()
        .queue_name(&queue_name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_secs.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| failed(&queue_name, &e))?
        .queue_url
        .unwrap_or_default();
    Ok(QueuePair { url, dlq_url })
}

fn failed<E: std::error::Error>(queue: &str, error: &E) -> ProvisionError {
    ProvisionError {
        queue: queue.to_owned(),
        reason: DisplayErrorContext(error).to_string(),
    }
}
