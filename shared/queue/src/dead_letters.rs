//! The queue's dead-letter side, as its redrive policy says (SPEC §7): where poison goes at
//! once, and on which receive a failed delivery is the last one.

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
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
