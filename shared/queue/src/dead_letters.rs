//! The queue's dead-letter side, as its redrive policy says (SPEC §7): where poison goes at
//! once, and on which receive a failed delivery is the last one.

use std::future::Future;
use std::pin::Pin;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    MessageSystemAttributeNameForSends, MessageSystemAttributeValue, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use keystone_store::notifications::{DeadLetterRedrive, RedriveOutcome, requeue_for_redrive};
use keystone_store::outbox::generation_of_deduplication_id;

use crate::message::RecorderCommand;
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
const REDRIVE_MAX_ROUNDS: usize = 1_000;

/// The longest a redrive keeps taking rounds: the endpoint answers well inside its 25 s Lambda
/// timeout and API Gateway's 30 s (docs/deploy.md, time budgets); the answer says whether
/// anything is left, and pressing it again moves the rest.
pub const REDRIVE_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(12);

/// How long one receive waits for messages: long enough that an empty answer means an empty
/// queue (a short poll samples only some of SQS's servers), short enough for the budget.
const REDRIVE_WAIT_SECONDS: i32 = 1;

impl DeadLetterRoute {
    /// The whole redrive (SPEC §5.9): puts every dead-lettered and parked command back in line
    /// in the database (whether or not its message has reached the dead-letter queue yet: SQS
    /// moves it there only at the receive after its last failure), then empties the
    /// dead-letter queue with long polls until it answers empty or the time budget is spent. A
    /// recorder command's message is deleted once its command is back in line (or was
    /// delivered since); any other message goes back to the queue with its group and
    /// attributes under a new deduplication id. The commands put back are published again in
    /// their devices' order by the publisher, like new ones.
    ///
    /// # Errors
    /// No dead-letter queue, or SQS or database failures, as text; what moved before stays
    /// moved.
    pub async fn redrive_all(
        &self,
        db: &keystone_store::Database,
        budget: std::time::Duration,
    ) -> Result<RedriveOutcome, String> {
        let target = self
            .target()
            .await
            .ok_or("the queue has no dead-letter queue")?
            .clone();
        let stop_at = std::time::Instant::now() + budget;
        let requeued = requeue_for_redrive(db, &[])
            .await
            .map_err(|e| e.to_string())?;
        let mut outcome = RedriveOutcome {
            outbox_rows_requeued: u64::try_from(requeued.outbox_ids.len()).unwrap_or(u64::MAX),
            requeued_outbox_ids: requeued.outbox_ids,
            ..RedriveOutcome::default()
        };
        let mut drained = false;
        for _ in 0..REDRIVE_MAX_ROUNDS {
            if std::time::Instant::now() >= stop_at {
                break;
            }
            let messages = self
                .client
                .receive_message()
                .queue_url(&target.url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .wait_time_seconds(REDRIVE_WAIT_SECONDS)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .message_system_attribute_names(MessageSystemAttributeName::MessageDeduplicationId)
                .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| DisplayErrorContext(&e).to_string())?
                .messages
                .unwrap_or_default();
            if messages.is_empty() {
                drained = true;
                break;
            }
            let moved = self
                .redrive_round(db, &target, &messages, &mut outcome)
                .await?;
            if moved == 0 {
                // Nothing of this round could be moved (SQS refused every entry): stop
                // rather than receive the same messages again.
                break;
            }
            outcome.dlq_messages_moved += moved;
        }
        outcome.stopped_for_time = !drained && std::time::Instant::now() >= stop_at;
        outcome.dead_letters_left = self.messages_left(&target.url).await;
        Ok(outcome)
    }

    /// One round of the drain: answers how many of `messages` left the dead-letter queue.
    async fn redrive_round(
        &self,
        db: &keystone_store::Database,
        target: &DeadLetterQueue,
        messages: &[aws_sdk_sqs::types::Message],
        outcome: &mut RedriveOutcome,
    ) -> Result<u64, String> {
        let commands: Vec<Option<(String, i32)>> = messages
            .iter()
            .map(|message| {
                let command = RecorderCommand::parse(message.body()).ok()?;
                let dedup = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageDeduplicationId))
                    .map_or("", String::as_str);
                Some((
                    command.notification_id,
                    generation_of_deduplication_id(dedup),
                ))
            })
            .collect();
        let letters: Vec<(String, i32)> = commands.iter().flatten().cloned().collect();
        let requeued = requeue_for_redrive(db, &letters)
            .await
            .map_err(|e| e.to_string())?;
        outcome.outbox_rows_requeued +=
            u64::try_from(requeued.outbox_ids.len()).unwrap_or(u64::MAX);
        outcome.requeued_outbox_ids.extend(requeued.outbox_ids);

        let mut deletions = Vec::with_capacity(messages.len());
        let mut entries = Vec::new();
        for (index, (message, command)) in messages.iter().zip(&commands).enumerate() {
            let known = command
                .as_ref()
                .is_some_and(|(notification, _)| requeued.known.contains(notification));
            if known {
                deletions.push(index);
            } else {
                entries.push(send_back_entry(index, message)?);
            }
        }
        if !entries.is_empty() {
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| DisplayErrorContext(&e).to_string())?;
            deletions.extend(
                sent.successful()
                    .iter()
                    .filter_map(|ok| ok.id().parse::<usize>().ok()),
            );
            for failure in sent.failed() {
                tracing::warn!(
                    code = failure.code(),
                    "a dead letter could not be sent back"
                );
            }
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = deletions
            .iter()
            .filter_map(|&index| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(messages.get(index)?.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return Ok(0);
        }
        let deleted = self
            .client
            .delete_message_batch()
            .queue_url(&target.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        Ok(u64::try_from(deleted.successful().len()).unwrap_or(u64::MAX))
    }

    /// Messages the dead-letter queue holds, in flight included (0 when SQS cannot say).
    async fn messages_left(&self, url: &str) -> u64 {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await;
        match attributes {
            Ok(output) => output
                .attributes()
                .map(|a| {
                    a.values()
                        .filter_map(|n| n.parse::<u64>().ok())
                        .sum::<u64>()
                })
                .unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = %DisplayErrorContext(&e), "cannot count the dead letters left");
                0
            }
        }
    }
}

/// A message that is not a known recorder command, sent back as it was: its group, its
/// attributes and trace header, under a new deduplication id (the original one may still be
/// inside SQS's five-minute window).
fn send_back_entry(
    index: usize,
    message: &aws_sdk_sqs::types::Message,
) -> Result<SendMessageBatchRequestEntry, String> {
    let system = message.attributes();
    let group = system
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .map_or("redrive", String::as_str);
    let dedup: String = format!("redrive-{}", message.message_id().unwrap_or(""))
        .chars()
        .take(128)
        .collect();
    let mut entry = SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(message.body().unwrap_or("(no body)"))
        .message_group_id(group)
        .message_deduplication_id(dedup)
        .set_message_attributes(message.message_attributes().cloned());
    if let Some(header) = system
        .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
        .and_then(|h| keystone_store::trace_context::xray_header(h))
    {
        entry = entry.message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(header)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    entry.build().map_err(|e| e.to_string())
}

impl DeadLetterRedrive for DeadLetterRoute {
    fn redrive<'a>(
        &'a self,
        db: &'a keystone_store::Database,
    ) -> Pin<Box<dyn Future<Output = Result<RedriveOutcome, String>> + Send + 'a>> {
        Box::pin(self.redrive_all(db, REDRIVE_TIME_BUDGET))
    }
}
