//! Sends outbox rows to the SQS FIFO queue: `MessageGroupId` = the device (per-device order),
//! `MessageDeduplicationId` = notification id.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    SendMessageBatchRequestEntry,
};
use keystone_store::Database;
use keystone_store::StoreError;
use keystone_store::outbox::{self, OutboxPublisher, OutboxRow, PublishFailure};

use crate::message::{RecorderCommand, message_group_id};

/// Most entries `SendMessageBatch` takes.
const SQS_BATCH: usize = 10;

/// What one send achieved, by outbox row id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub sent: Vec<i64>,
    pub failed: Vec<PublishFailure>,
}

/// The message attribute carrying the queuing request's trace context.
pub const TRACE_CONTEXT_ATTRIBUTE: &str = "keystone_trace_context";

/// Refusals after which a row is parked (SPEC §7 "Parking"); `OUTBOX_PARK_AFTER` overrides.
pub const DEFAULT_PARK_AFTER: i32 = 10;

/// Publishes outbox rows to one queue.
#[derive(Debug, Clone)]
pub struct SqsPublisher {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    db: Database,
    /// How long a leased row is reserved for this publisher.
    lease: Duration,
    /// Refusals after which a row is parked.
    park_after: i32,
}

impl SqsPublisher {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String, db: Database) -> Self {
        Self {
            client,
            queue_url,
            db,
            lease: Duration::from_secs(60),
            park_after: DEFAULT_PARK_AFTER,
        }
    }

    /// Parks a row after `refusals` refusals instead of [`DEFAULT_PARK_AFTER`].
    #[must_use]
    pub fn with_park_after(mut self, refusals: i32) -> Self {
        self.park_after = refusals.max(1);
        self
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Sends rows in batches of ten, in order. `SendMessageBatch` can succeed while some
    /// entries fail, so every entry's outcome is read.
    pub async fn send(&self, rows: &[OutboxRow]) -> PublishReport {
        let mut report = PublishReport::default();
        for chunk in rows.chunks(SQS_BATCH) {
            let mut entries = Vec::with_capacity(chunk.len());
            for row in chunk {
                match entry(row) {
                    Ok(entry) => entries.push(entry),
                    Err(reason) => report.failed.push(PublishFailure {
                        outbox_id: row.id,
                        reason,
                        refused: true,
                    }),
                }
            }
            if entries.is_empty() {
                continue;
            }
            let ids: Vec<i64> = entries.iter().filter_map(|e| e.id().parse().ok()).collect();
            match self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => {
                    report.sent.extend(
                        output
                            .successful()
                            .iter()
                            .filter_map(|s| s.id().parse::<i64>().ok()),
                    );
                    for failure in output.failed() {
                        if let Ok(outbox_id) = failure.id().parse::<i64>() {
                            let reason = format!(
                                "{}: {}",
                                failure.code(),
                                failure.message().unwrap_or("no message")
                            );
                            // SQS says whose fault it is: the message's (refused) or its own.
                            report.failed.push(PublishFailure {
                                outbox_id,
                                reason,
                                refused: failure.sender_fault(),
                            });
                        }
                    }
                }
                Err(err) => {
                    let reason = DisplayErrorContext(&err).to_string();
                    // SQS unreachable or down: not the rows' fault, they do not move toward
                    // parking.
                    report
                        .failed
                        .extend(ids.into_iter().map(|outbox_id| PublishFailure {
                            outbox_id,
                            reason: reason.clone(),
                            refused: false,
                        }));
                }
            }
        }
        report
    }

    /// Sends rows this publisher leased and records the outcome on each.
    ///
    /// # Errors
    /// Database failures while recording (the messages may then be sent again later, which
    /// FIFO deduplication and the consumer's delivery records absorb).
    pub async fn publish_leased(&self, rows: &[OutboxRow]) -> Result<PublishReport, StoreError> {
        let report = self.send(rows).await;
        if !report.sent.is_empty() {
            outbox::mark_published(&self.db, &report.sent).await?;
            metrics::counter!("NotificationsPublished")
                .increment(u64::try_from(report.sent.len()).unwrap_or(u64::MAX));
        }
        for failure in &report.failed {
            tracing::warn!(
                outbox_id = failure.outbox_id,
                reason = %failure.reason,
                refused = failure.refused,
                "notification not published"
            );
        }
        outbox::record_publish_failures(&self.db, &report.failed, self.park_after).await?;
        Ok(report)
    }
}

fn entry(row: &OutboxRow) -> Result<SendMessageBatchRequestEntry, String> {
    let body = RecorderCommand::from_row(row)
        .and_then(|command| serde_json::to_string(&command))
        .map_err(|e| format!("cannot encode message: {e}"))?;
    let mut entry = SendMessageBatchRequestEntry::builder()
        .id(row.id.to_string())
        .message_body(body)
        .message_group_id(message_group_id(&row.device_id))
        .message_deduplication_id(&row.notification_id);
    if let Some(context) = row.trace_context.as_deref().filter(|c| !c.is_empty()) {
        // An X-Ray header rides as AWSTraceHeader, which links the consumer's trace to the
        // request's; any trace context also rides as an attribute for the consumer's logs.
        if context.starts_with("Root=") {
            entry = entry.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(context)
                    .build()
                    .map_err(|e| format!("cannot build the trace header: {e}"))?,
            );
        }
        entry = entry.message_attributes(
            TRACE_CONTEXT_ATTRIBUTE,
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(context)
                .build()
                .map_err(|e| format!("cannot build the trace attribute: {e}"))?,
        );
    }
    entry
        .build()
        .map_err(|e| format!("cannot build entry: {e}"))
}

impl OutboxPublisher for SqsPublisher {
    fn publish_committed<'a>(
        &'a self,
        outbox_ids: &'a [i64],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let result = async {
                let rows = outbox::lease_by_ids(&self.db, outbox_ids, self.lease).await?;
                self.publish_leased(&rows).await
            }
            .await;
            match result {
                Ok(report) => tracing::info!(
                    sent = report.sent.len(),
                    failed = report.failed.len(),
                    "notifications published after commit"
                ),
                Err(e) => tracing::warn!(error = %e, "inline publish failed; the relay will send"),
            }
        })
    }
}
