//! The outbox relay: publishes every row still unpublished, oldest first (SPEC §7). Runs on a
//! schedule in AWS and on a timer in the local stack, with the same code.

use std::time::{Duration, Instant};

use keystone_store::StoreError;
use keystone_store::{batch_lists, outbox};
use serde::Serialize;

use crate::SqsPublisher;

/// Rows leased per round.
pub const RELAY_BATCH: i64 = 100;
/// Rounds per run, so one run cannot outlive its Lambda timeout.
pub const RELAY_MAX_ROUNDS: usize = 50;
/// Days delivered recorder commands are kept by default (SPEC §7 "Retention").
pub const DEFAULT_RETENTION_DAYS: u64 = 30;
/// Rows one retention statement removes at most: short transactions, whatever the backlog.
pub const RETENTION_BATCH: i64 = 500;
/// Retention statements per run at most; the next run goes on.
const RETENTION_MAX_ROUNDS: usize = 20;

/// Idempotency keys older than this are purged (SPEC §6.1).
pub const IDEMPOTENCY_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RelayOutcome {
    pub leased: usize,
    pub published: usize,
    pub failed: usize,
    pub purged_idempotency_keys: u64,
    /// Settled recorder commands and delivery records removed for their age.
    pub purged_notifications: u64,
    /// Batch status tally rows folded away (the batch list's totals).
    pub folded_tally_rows: u64,
    /// The run stopped taking rounds because its invocation was running out of time; the rows
    /// left are the next run's.
    pub out_of_time: bool,
}

/// The time a relay round may take at most (a lease and a send, each bounded): a run stops
/// taking rounds when less than this is left of its invocation.
pub const RELAY_ROUND_RESERVE: Duration = Duration::from_secs(15);

/// Publishes unpublished rows in rounds of `batch` until a round finds none (or sends none,
/// or `max_rounds` pass), then purges expired idempotency keys, folds the batch status tally,
/// and removes, in small batches, delivered recorder commands older than the publisher's
/// retention.
///
/// Rows are leased with `FOR UPDATE SKIP LOCKED`, so relays running at once (and the inline
/// publish) never send the same row.
///
/// # Errors
/// Database failures.
pub async fn relay(
    publisher: &SqsPublisher,
    batch: i64,
    max_rounds: usize,
) -> Result<RelayOutcome, StoreError> {
    relay_until(publisher, batch, max_rounds, None).await
}

/// [`relay`] that takes no new round after `stop_at` (the invocation's deadline less
/// [`RELAY_ROUND_RESERVE`]), so a run never outlives its Lambda timeout mid-round, and says
/// so in [`RelayOutcome::out_of_time`].
///
/// # Errors
/// Database failures.
pub async fn relay_until(
    publisher: &SqsPublisher,
    batch: i64,
    max_rounds: usize,
    stop_at: Option<Instant>,
) -> Result<RelayOutcome, StoreError> {
    let mut outcome = RelayOutcome::default();
    for _ in 0..max_rounds {
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            outcome.out_of_time = true;
            tracing::warn!("relay run out of time; the next run sends the rest");
            break;
        }
        let rows = outbox::lease_unpublished(publisher.db(), batch, publisher.lease()).await?;
        if rows.is_empty() {
            break;
        }
        let report = publisher.publish_leased(&rows).await?;
        outcome.leased += rows.len();
        outcome.published += report.sent.len();
        outcome.failed += report.failed.len();
        // A round that sent nothing means SQS is failing: stop and let the next run retry.
        // A short round is not the end: concurrent relays may have taken the rest of the
        // page, so only an empty round is.
        if report.sent.is_empty() {
            break;
        }
    }
    outcome.purged_idempotency_keys =
        outbox::purge_idempotency_keys(publisher.db(), IDEMPOTENCY_KEY_TTL).await?;
    outcome.folded_tally_rows = batch_lists::fold_batch_tally(publisher.db()).await?;
    for _ in 0..RETENTION_MAX_ROUNDS {
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            outcome.out_of_time = true;
            break;
        }
        let removed = outbox::purge_settled_notifications(
            publisher.db(),
            publisher.retention(),
            RETENTION_BATCH,
        )
        .await?;
        outcome.purged_notifications += removed;
        if removed == 0 {
            break;
        }
    }
    // What is left after this run: the alarms on the backlog's age and on parked rows.
    let (oldest_age_seconds, parked) = outbox::backlog(publisher.db()).await?;
    metrics::gauge!("OutboxOldestUnpublishedAgeSeconds").set(oldest_age_seconds);
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("OutboxParkedRows").set(parked as f64);
    tracing::info!(?outcome, oldest_age_seconds, parked, "relay run finished");
    Ok(outcome)
}
