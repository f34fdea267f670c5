//! The `recorder-notifier` consumer (SPEC §7): one device RPC per notification, whatever SQS
//! redelivers.

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;
use keystone_store::Database;
use keystone_store::deliveries::{self, DeliveryClaim, Receive};
use tracing::Instrument;

use crate::NotifierConfig;
use crate::dead_letters::DeadLetterRoute;
use crate::message::{RecorderAction, RecorderCommand};

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The device accepted the command (or had nothing left to do).
    Delivered { status: u16 },
    /// Delivered before; acknowledged without calling the device.
    AlreadyDelivered,
    /// Reported as a batch item failure: SQS redelivers it, and after `maxReceiveCount` it
    /// goes to the DLQ.
    Failed { reason: String },
    /// Not tried: an earlier command of the device, queued before it, is not settled yet.
    /// Reported as a batch item failure, like [`Outcome::Failed`].
    HeldBack { behind: String },
    /// A redriven `clear` that a later command of the device overtook: never sent (it would
    /// clear a newer ready task); acknowledged.
    Superseded,
    /// Could never succeed (not a valid command): sent to the DLQ at once and acknowledged, so
    /// it does not hold its device's later commands through every retry.
    DeadLettered { reason: String },
    /// A kind of message this consumer does not handle: acknowledged and logged.
    Ignored { reason: String },
}

impl Outcome {
    /// Reported to SQS as a batch item failure (it comes back).
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed { .. } | Self::HeldBack { .. })
    }
}

/// Calls recorders for SQS messages.
#[derive(Debug, Clone)]
pub struct RecorderNotifier {
    db: Database,
    http: reqwest::Client,
    config: NotifierConfig,
    /// The queue's DLQ and `maxReceiveCount`, from its redrive policy.
    dead_letters: Option<DeadLetterRoute>,
}

impl RecorderNotifier {
    /// # Errors
    /// When the HTTP client cannot be built (TLS backend failure).
    pub fn new(db: Database, config: NotifierConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            // A recorder answers; it does not send the command elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.rpc_timeout)
            .connect_timeout(config.rpc_timeout.min(Duration::from_secs(2)))
            .build()?;
        Ok(Self {
            db,
            http,
            config,
            dead_letters: None,
        })
    }

    /// Sends poison straight to `route`'s dead-letter queue and records deliveries that fail on
    /// their last allowed receive as dead-lettered. Without it, poison is failed like any
    /// other message and reaches the DLQ through SQS's retries.
    #[must_use]
    pub fn with_dead_letters(mut self, route: DeadLetterRoute) -> Self {
        self.dead_letters = Some(route);
        self
    }

    /// Handles a whole SQS event and answers only the failed message ids (SPEC §7 "Order per
    /// device"). Messages of one `MessageGroupId` (one device) are handled one after another
    /// in the order received; at the first failure, that message and every later one of the
    /// group are reported failed without being tried, so a device never gets a later command
    /// before an earlier one. Groups run concurrently: one slow device does not hold up the
    /// others. A message without a group id (not from a FIFO queue) is a group of its own.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle_until(event, None).await
    }

    /// [`RecorderNotifier::handle`] that starts no message after `stop_at` (the invocation's
    /// deadline less one RPC and its bookkeeping): the messages not started are reported
    /// failed, untried, and SQS delivers them again, in order, to a later invocation.
    pub async fn handle_until(
        &self,
        event: SqsEvent,
        stop_at: Option<std::time::Instant>,
    ) -> SqsBatchResponse {
        let failed = join_all(
            messages_by_group(event.records)
                .into_iter()
                .map(|group| self.handle_group(group, stop_at)),
        )
        .await;
        let mut response = SqsBatchResponse::default();
        for id in failed.into_iter().flatten() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
        response
    }

    /// One group's messages in order; answers the ids to report failed.
    async fn handle_group(
        &self,
        messages: Vec<SqsMessage>,
        stop_at: Option<std::time::Instant>,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        let mut messages = messages.into_iter();
        while let Some(message) = messages.next() {
            let id = message.message_id.clone().unwrap_or_default();
            if stop_at.is_some_and(|at| std::time::Instant::now() >= at) {
                failed.push(id);
                failed.extend(messages.map(|m| m.message_id.unwrap_or_default()));
                tracing::warn!(
                    unfinished = failed.len(),
                    "invocation out of time; these commands wait for their next delivery"
                );
                break;
            }
            let span = tracing::info_span!(
                "sqs_message",
                message_id = %id,
                trace = %trace_context(&message).unwrap_or_default()
            );
            let body = message.body.clone();
            let outcome = self.process(message).instrument(span.clone()).await;
            if outcome.is_failure() {
                let behind = RecorderCommand::parse(body.as_deref())
                    .map_or_else(|_| format!("message {id}"), |c| c.notification_id);
                failed.push(id);
                let rest: Vec<SqsMessage> = messages.collect();
                failed.extend(
                    rest.iter()
                        .map(|m| m.message_id.clone().unwrap_or_default()),
                );
                if !rest.is_empty() {
                    tracing::info!(
                        held_back = rest.len(),
                        "later commands of this device wait for the failed one"
                    );
                    self.record_held_back(&rest, &behind).instrument(span).await;
                }
                break;
            }
        }
        failed
    }

    /// Records the messages of a group not tried because an earlier one failed in the same
    /// batch: `held_back`, or `dead_lettered` on their last allowed receive (they leave for the
    /// DLQ with it). Best effort: the records only describe; the failures reported to SQS are
    /// what keeps the order.
    async fn record_held_back(&self, rest: &[SqsMessage], behind: &str) {
        let mut commands = Vec::with_capacity(rest.len());
        for message in rest {
            if let Ok(command) = RecorderCommand::parse(message.body.as_deref()) {
                let last = self.is_last_receive(message).await;
                commands.push((command, last));
            }
        }
        let receives: Vec<Receive<'_>> = commands
            .iter()
            .map(|(command, last)| Receive {
                notification_id: &command.notification_id,
                device_id: &command.device_id,
                last: *last,
            })
            .collect();
        let leaving = receives.iter().filter(|r| r.last).count();
        if leaving > 0 {
            tracing::error!(
                leaving,
                behind,
                "commands held back on their last allowed receive leave for the DLQ"
            );
            metrics::counter!("NotificationsDeadLettered")
                .increment(u64::try_from(leaving).unwrap_or(u64::MAX));
        }
        if let Err(e) = deliveries::record_held_back(&self.db, &receives, behind).await {
            tracing::warn!(error = %e, "cannot record held-back commands");
        }
    }

    /// Handles one message.
    pub async fn process(&self, message: SqsMessage) -> Outcome {
        let command = match RecorderCommand::parse(message.body.as_deref()) {
            Ok(command) => command,
            Err(problem) if !problem.is_poison() => {
                tracing::warn!(reason = %problem, "message not for this consumer; acknowledged");
                return Outcome::Ignored {
                    reason: problem.to_string(),
                };
            }
            Err(problem) => {
                return self
                    .dead_letter_poison(&message, &problem.to_string())
                    .await;
            }
        };
        let notification = command.notification_id.as_str();
        let last = self.is_last_receive(&message).await;
        let receive = Receive {
            notification_id: notification,
            device_id: &command.device_id,
            last,
        };
        match deliveries::claim_delivery(&self.db, receive, self.config.lease).await {
            Ok(DeliveryClaim::Claimed { attempt }) => {
                tracing::info!(notification, device_id = %command.device_id, attempt, "calling recorder");
            }
            Ok(DeliveryClaim::AlreadyDelivered) => {
                tracing::info!(notification, "already delivered; acknowledging");
                return Outcome::AlreadyDelivered;
            }
            Ok(DeliveryClaim::Superseded) => {
                tracing::warn!(
                    notification,
                    "a later command of the device was delivered first; this clear is superseded"
                );
                metrics::counter!("NotificationsSuperseded").increment(1);
                return Outcome::Superseded;
            }
            Ok(DeliveryClaim::HeldBack {
                behind,
                dead_lettered,
            }) => {
                if dead_lettered {
                    tracing::error!(notification, %behind, "held back on its last allowed receive; SQS moves it to the DLQ");
                    metrics::counter!("NotificationsDeadLettered").increment(1);
                } else {
                    tracing::info!(notification, %behind, "an earlier command of the device goes first; retry later");
                }
                return Outcome::HeldBack { behind };
            }
            Ok(DeliveryClaim::InFlightElsewhere) => {
                tracing::info!(
                    notification,
                    "another consumer is delivering it; retry later"
                );
                return Outcome::Failed {
                    reason: "delivery in flight elsewhere".to_owned(),
                };
            }
            Err(e) => {
                tracing::error!(notification, error = %e, "cannot claim delivery");
                return Outcome::Failed {
                    reason: e.to_string(),
                };
            }
        }

        let started = std::time::Instant::now();
        let (status, error) = self.call_recorder(&command).await;
        metrics::histogram!("RecorderRpcLatency").record(started.elapsed().as_secs_f64() * 1_000.0);
        match status {
            Some(status) if (200..300).contains(&status) || status == 400 || status == 409 => {
                tracing::info!(notification, status, "recorder accepted the command");
                // The device has it: the record must say so, or the next delivery would call
                // the device again. A few quick tries; if the database stays away, the message
                // is failed and its next delivery finds the lease expired and calls again
                // (recorders answer a repeated clear or cancel with 409).
                let mut recorded = deliveries::mark_delivered(&self.db, notification, status).await;
                for pause_ms in [50, 200, 800] {
                    if recorded.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                    recorded = deliveries::mark_delivered(&self.db, notification, status).await;
                }
                match recorded {
                    Ok(()) => {
                        metrics::counter!("NotificationsDelivered").increment(1);
                        Outcome::Delivered { status }
                    }
                    Err(e) => {
                        tracing::error!(notification, error = %e, "delivered, but cannot record it; SQS delivers the message again");
                        Outcome::Failed {
                            reason: format!("delivered but not recorded: {e}"),
                        }
                    }
                }
            }
            _ => {
                if last {
                    tracing::error!(notification, error = %error, "last allowed delivery failed; SQS moves it to the DLQ");
                    metrics::counter!("NotificationsDeadLettered").increment(1);
                } else {
                    metrics::counter!("NotificationsRetried").increment(1);
                }
                if let Err(e) =
                    deliveries::record_failed_attempt(&self.db, notification, status, &error, last)
                        .await
                {
                    tracing::error!(notification, error = %e, "cannot record the failed attempt");
                }
                tracing::warn!(notification, ?status, error = %error, "recorder call failed; will retry");
                Outcome::Failed { reason: error }
            }
        }
    }

    /// Sends a message that can never succeed to the DLQ with its reason and acknowledges it;
    /// when that is impossible, fails it so SQS's retries get it there.
    async fn dead_letter_poison(&self, message: &SqsMessage, reason: &str) -> Outcome {
        let id = message.message_id.as_deref().unwrap_or("");
        let group = message.attributes.get("MessageGroupId").map(String::as_str);
        let sent = match &self.dead_letters {
            Some(route) => {
                route
                    .send_poison(message.body.as_deref(), id, group, reason)
                    .await
            }
            None => Err("no dead-letter route configured".to_owned()),
        };
        match sent {
            Ok(()) => {
                tracing::error!(reason, "malformed message sent to the DLQ");
                metrics::counter!("NotificationsDeadLettered").increment(1);
                Outcome::DeadLettered {
                    reason: reason.to_owned(),
                }
            }
            Err(e) => {
                tracing::error!(reason, error = %e, "malformed message; SQS retries will dead-letter it");
                Outcome::Failed {
                    reason: reason.to_owned(),
                }
            }
        }
    }

    /// True when SQS will not deliver this message again: its receive count has reached the
    /// queue's `maxReceiveCount`.
    async fn is_last_receive(&self, message: &SqsMessage) -> bool {
        let Some(route) = &self.dead_letters else {
            return false;
        };
        let received: Option<u32> = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok());
        match (received, route.target().await) {
            (Some(received), Some(target)) => received >= target.max_receive_count,
            _ => false,
        }
    }

    /// `POST {base}/rpc/clear` with `{}` or `POST {base}/rpc/cancel` with `{"task_id"}`.
    /// Returns the HTTP status (none for timeouts and connection errors) and a description.
    async fn call_recorder(&self, command: &RecorderCommand) -> (Option<u16>, String) {
        let base = self
            .config
            .rpc_url_template
            .replace("{device_id}", &command.device_id);
        let base = base.trim_end_matches('/');
        let (url, body) = match command.action {
            RecorderAction::Clear => (format!("{base}/rpc/clear"), serde_json::json!({})),
            RecorderAction::Cancel => (
                format!("{base}/rpc/cancel"),
                serde_json::json!({ "task_id": command.task_id }),
            ),
        };
        match self.http.post(&url).json(&body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (Some(status), format!("recorder answered {status}"))
            }
            Err(e) if e.is_timeout() => (None, format!("recorder timed out: {e}")),
            Err(e) => (None, format!("recorder unreachable: {e}")),
        }
    }
}

/// The trace context the queuing request gave the message: Lambda passes the `AWSTraceHeader`
/// system attribute (X-Ray links the traces itself), and Keystone's own message attribute
/// carries any trace context for the logs.
pub fn trace_context(message: &SqsMessage) -> Option<String> {
    message
        .message_attributes
        .get(crate::publisher::TRACE_CONTEXT_ATTRIBUTE)
        .and_then(|a| a.string_value.clone())
        .or_else(|| message.attributes.get("AWSTraceHeader").cloned())
}

/// The records split by `MessageGroupId`, groups in order of first appearance and messages in
/// the order received.
fn messages_by_group(records: Vec<SqsMessage>) -> Vec<Vec<SqsMessage>> {
    let mut groups: Vec<(String, Vec<SqsMessage>)> = Vec::new();
    for record in records {
        let key = record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_else(|| format!("message:{}", record.message_id.as_deref().unwrap_or("")));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, messages)) => messages.push(record),
            None => groups.push((key, vec![record])),
        }
    }
    groups.into_iter().map(|(_, messages)| messages).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, group: Option<&str>) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.to_owned());
        if let Some(group) = group {
            record
                .attributes
                .insert("MessageGroupId".to_owned(), group.to_owned());
        }
        record
    }

    fn ids(groups: &[Vec<SqsMessage>]) -> Vec<Vec<&str>> {
        groups
            .iter()
            .map(|g| g.iter().filter_map(|m| m.message_id.as_deref()).collect())
            .collect()
    }

    #[test]
    fn records_are_grouped_by_device_in_the_order_received() {
        let groups = messages_by_group(vec![
            record("a1", Some("a")),
            record("b1", Some("b")),
            record("a2", Some("a")),
            record("x", None),
            record("a3", Some("a")),
            record("y", None),
        ]);
        assert_eq!(
            ids(&groups),
            [vec!["a1", "a2", "a3"], vec!["b1"], vec!["x"], vec!["y"]]
        );
    }
}
