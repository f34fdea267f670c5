//! The queue's dead-letter side, as its redrive policy says (SPEC §7): where poison goes at
//! once, and on which receive a failed delivery is the last one.

use std::future::Future;
use std::pin::Pin;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use keystone_store::notifications::DeadLetterRedrive;
use serde::Deserialize;
use tokio::sync::OnceCell;

/// A queue's dead-letter queue and `maxReceiveCount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterQueue {
    pub url: String,
    pub max_receive_count: u32,
}

/// `RedrivePolicy` as SQS returns it (`maxReceiveCount` may come as a string or a number).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedrivePolicy {
    dead_letter_target_arn: String,
    max_receive_count: serde_json::Value,
}

/// Reads `queue_url`'s redrive policy and resolves its dead-letter queue's URL. `None` when
/// the queue has no redrive policy.
///
/// # Errors
/// SQS failures or a policy that cannot be read, as text.
pub async fn discover(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Option<DeadLetterQueue>, String> {
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(&e).to_string())?;
    let Some(policy) = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
    else {
        return Ok(None);
    };
    let policy: RedrivePolicy =
        serde_json::from_str(policy).map_err(|e| format!("unreadable redrive policy: {e}"))?;
    let max_receive_count = match &policy.max_receive_count {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
    .ok_or("redrive policy without a usable maxReceiveCount")?;
    // arn:aws:sqs:{region}:{account}:{name}
    let mut parts = policy.dead_letter_target_arn.rsplitn(3, ':');
    let (Some(name), Some(account)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "dead-letter target {:?} is not a queue ARN",
            policy.dead_letter_target_arn
        ));
    };
    let url = client
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(&e).to_string())?
        .queue_url
        .ok_or("GetQueueUrl answered no URL")?;
    Ok(Some(DeadLetterQueue {
        url,
        max_receive_count,
    }))
}

/// The dead-letter side of one queue, discovered on first use and kept for the container's
/// life.
#[derive(Debug, Clone)]
pub struct DeadLetterRoute {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    target: std::sync::Arc<OnceCell<Option<DeadLetterQueue>>>,
}

impl DeadLetterRoute {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self {
            client,
            queue_url,
            target: std::sync::Arc::new(OnceCell::new()),
        }
    }

    /// The dead-letter queue, or `None` when the queue has none (or it cannot be read now;
    /// then it is asked again next time).
    pub async fn target(&self) -> Option<&DeadLetterQueue> {
        let found = self
            .target
            .get_or_try_init(|| async { discover(&self.client, &self.queue_url).await })
            .await;
        match found {
            Ok(target) => target.as_ref(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the queue's redrive policy");
                None
            }
        }
    }

    /// Sends a message that can never succeed straight to the dead-letter queue, with why.
    ///
    /// # Errors
    /// No dead-letter queue, or SQS refusing the message, as text.
    pub async fn send_poison(
        &self,
        body: Option<&str>,
        message_id: &str,
        group_id: Option<&str>,
        reason: &str,
    ) -> Result<(), String> {
        let target = self
            .target()
            .await
            .ok_or("the queue has no dead-letter queue")?;
        let text = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| e.to_string())
        };
        let body = body.filter(|b| !b.is_empty()).unwrap_or("(no body)");
        let message_id = if message_id.is_empty() {
            "(none)"
        } else {
            message_id
        };
        let dedup: String = message_id
            .chars()
            .filter(char::is_ascii_graphic)
            .take(128)
            .collect();
        self.client
            .send_message()
            .queue_url(&target.url)
            .message_body(body)
            .message_group_id(group_id.unwrap_or("poison"))
            .message_deduplication_id(if dedup.is_empty() {
                "poison"
            } else {
                dedup.as_str()
            })
            .message_attributes("keystone_reason", text(reason)?)
            .message_attributes("keystone_source_message_id", text(message_id)?)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        Ok(())
    }
}

/// Most receive rounds one redrive runs (ten messages each), so a call always ends.
const REDRIVE_MAX_ROUNDS: usize = 100;

/// The longest a redrive keeps taking rounds: the endpoint answers well inside its 25 s Lambda
/// timeout and API Gateway's 30 s (docs/deploy.md, time budgets); pressing it again moves the
/// rest.
pub const REDRIVE_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(12);

impl DeadLetterRoute {
    /// Receives from the dead-letter queue and sends back to the queue, ten at a time, each
    /// message in its own group (the device) and under a new deduplication id (the original
    /// one may still be inside SQS's five-minute window); deletes only what was sent. Works on
    /// any SQS-speaking server, unlike `StartMessageMoveTask`.
    ///
    /// # Errors
    /// No dead-letter queue, or SQS failures, as text; what moved before stays moved.
    pub async fn move_dead_letters_back(&self) -> Result<u64, String> {
        let target = self
            .target()
            .await
            .ok_or("the queue has no dead-letter queue")?;
        let mut moved = 0_u64;
        let stop_at = std::time::Instant::now() + REDRIVE_TIME_BUDGET;
        for _ in 0..REDRIVE_MAX_ROUNDS {
            if std::time::Instant::now() >= stop_at {
                tracing::warn!(
                    moved,
                    "redrive out of time; dead letters may remain, redrive again"
                );
                break;
            }
            let messages = self
                .client
                .receive_message()
                .queue_url(&target.url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .map_err(|e| DisplayErrorContext(&e).to_string())?
                .messages
                .unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            let mut entries = Vec::with_capacity(messages.len());
            for (index, message) in messages.iter().enumerate() {
                let group = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .map_or("redrive", String::as_str);
                let dedup: String = format!("redrive-{}", message.message_id().unwrap_or(""))
                    .chars()
                    .take(128)
                    .collect();
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(message.body().unwrap_or("(no body)"))
                        .message_group_id(group)
                        .message_deduplication_id(dedup)
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            }
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| DisplayErrorContext(&e).to_string())?;
            let deletions: Vec<DeleteMessageBatchRequestEntry> = sent
                .successful()
                .iter()
                .filter_map(|ok| {
                    let index: usize = ok.id().parse().ok()?;
                    DeleteMessageBatchRequestEntry::builder()
                        .id(ok.id())
                        .receipt_handle(messages.get(index)?.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            for failure in sent.failed() {
                tracing::warn!(
                    code = failure.code(),
                    "a dead letter could not be sent back"
                );
            }
            if deletions.is_empty() {
                break;
            }
            moved += u64::try_from(deletions.len()).unwrap_or(0);
            self.client
                .delete_message_batch()
                .queue_url(&target.url)
                .set_entries(Some(deletions))
                .send()
                .await
                .map_err(|e| DisplayErrorContext(&e).to_string())?;
        }
        Ok(moved)
    }
}

impl DeadLetterRedrive for DeadLetterRoute {
    fn redrive(&self) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + '_>> {
        Box::pin(self.move_dead_letters_back())
    }
}
