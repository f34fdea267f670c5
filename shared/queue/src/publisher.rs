//! Sends outbox rows to the SQS FIFO queue: `MessageGroupId` = the device (per-device order),
//! `MessageDeduplicationId` = notification id.

use std::collections::HashSet;
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
    /// In the order SQS accepted them.
    pub sent: Vec<i64>,
    pub failed: Vec<PublishFailure>,
    /// Not tried: an earlier row of the same device failed in this send, and a device's rows
    /// must reach SQS in order.
    pub untried: Vec<i64>,
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
    /// Age after which settled commands are removed by the relay.
    retention: Duration,
}

impl SqsPublisher {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String, db: Database) -> Self {
        Self {
            client,
            queue_url,
            db,
            lease: Duration::from_secs(60),
            park_after: DEFAULT_PARK_AFTER,
            retention: Duration::from_secs(crate::relay::DEFAULT_RETENTION_DAYS * 86_400),
        }
    }

    /// Keeps delivered commands for `retention` instead of the default 30 days.
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    pub fn retention(&self) -> Duration {
        self.retention
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

    /// Sends rows in batches of up to ten, each batch holding at most one row per device, in
    /// outbox order. A device whose row fails (the whole call, or its entry alone) gets nothing
    /// more in this send: its later rows are [`PublishReport::untried`], so SQS never accepts
    /// a device's later command before an earlier one (SPEC §7 "Order end to end"). Other
    /// devices go on. `SendMessageBatch` can succeed while some entries fail, so every
    /// entry's outcome is read.
    pub async fn send(&self, rows: &[OutboxRow]) -> PublishReport {
        let mut report = PublishReport::default();
        let mut stopped: HashSet<&str> = HashSet::new();
        let mut waiting: Vec<&OutboxRow> = rows.iter().collect();
        waiting.sort_by_key(|row| row.id);
        while !waiting.is_empty() {
            let mut chunk: Vec<&OutboxRow> = Vec::with_capacity(SQS_BATCH);
            let mut later = Vec::with_capacity(waiting.len());
            for row in waiting {
                if stopped.contains(row.device_id.as_str()) {
                    report.untried.push(row.id);
                } else if chunk.len() < SQS_BATCH
                    && !chunk.iter().any(|taken| taken.device_id == row.device_id)
                {
                    chunk.push(row);
                } else {
                    later.push(row);
                }
            }
            waiting = later;
            let failed_before = report.failed.len();
            self.send_chunk(&chunk, &mut report).await;
            for failure in &report.failed[failed_before..] {
                if let Some(row) = chunk.iter().find(|row| row.id == failure.outbox_id) {
                    stopped.insert(row.device_id.as_str());
                }
            }
        }
        report
    }

    /// One `SendMessageBatch` of rows of distinct devices.
    async fn send_chunk(&self, chunk: &[&OutboxRow], report: &mut PublishReport) {
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
            return;
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
        if !report.untried.is_empty() {
            tracing::info!(
                untried = report.untried.len(),
                "later rows of devices whose row failed wait for the next run"
            );
            outbox::release_untried(&self.db, &report.untried).await?;
        }
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
        .message_deduplication_id(row.deduplication_id());
    if let Some(context) = row
        .trace_context
        .as_deref()
        .and_then(keystone_store::trace_context::trusted)
    {
        // A well-formed X-Ray header rides as AWSTraceHeader, which links the consumer's trace
        // to the request's (SQS refuses a malformed one, and a refusal counts toward parking:
        // rows stored before headers were checked are checked again here); the trace context
        // Keystone wrote also rides as an attribute for the consumer's logs.
        if let Some(header) = keystone_store::trace_context::xray_header(&context) {
            entry = entry.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(header)
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
