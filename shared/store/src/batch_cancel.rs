//! Cancelling a batch (SPEC §5.11): work pulled back from a workstation.

use keystone_domain::{BatchStatus, DomainError};
use serde::Serialize;

use crate::database::named_statements;
use crate::dispatch::{BatchSummary, read_batch_summary};
use crate::finalize::NotificationReason;
use crate::locking::{BatchScope, OpenBatches, UnitOfWork};
use crate::{Database, StoreError};

/// The 200 body of `POST /api/v1/batches/{id}/cancel`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CancelBatchResponse {
    pub batch: BatchSummary,
    /// False when the batch was already cancelled: nothing changed.
    pub cancelled: bool,
    pub cancelled_task_count: i64,
    pub notifications_enqueued: i64,
    /// Outbox rows written, for the publisher to send right after commit.
    #[serde(skip)]
    pub outbox_ids: Vec<i64>,
}

/// Cancels a pending or active batch in one transaction under the §6 lock order (order, batch,
/// its tasks, its workstation): its runnable tasks become cancelled, recorder commands go out
/// through the outbox for its ready and in-progress tasks on Axon robots (`batch_cancelled`),
/// the batch becomes cancelled with `ended_at`, and its workstation's status is re-derived.
/// Completed tasks stay completed; the order is not advanced. A fixed number of statements.
///
/// # Errors
/// [`DomainError::BatchNotFound`]; [`DomainError::BatchNotCancellable`] for a completed or
/// recalled batch; database failures.
#[tracing::instrument(skip_all, fields(batch_id))]
pub async fn cancel_batch(db: &Database, batch_id: i64) -> Result<CancelBatchResponse, StoreError> {
    let work = UnitOfWork::begin(db).await?;
    let (mut scope, batch) = work
        .lock_batch_through_order(batch_id, OpenBatches::Never, None)
        .await?;
    let (cancelled, cancelled_task_count, outbox_ids) = match batch.status {
        BatchStatus::Cancelled => (false, 0, Vec::new()),
        BatchStatus::Pending | BatchStatus::Active => {
            let (count, outbox_ids) = scope
                .cancel_runnable_tasks(Some(batch_id), NotificationReason::BatchCancelled)
                .await?;
            if scope.cancel_open_batches(Some(batch_id)).await? != 1 {
                return Err(StoreError::Invariant(format!(
                    "batch {batch_id} was not open under its lock"
                )));
            }
            (true, count, outbox_ids)
        }
        current_status => {
            return Err(DomainError::BatchNotCancellable { current_status }.into());
        }
    };
    let (batch, _) = read_batch_summary(scope.conn(), batch_id, None)
        .await?
        .ok_or_else(|| StoreError::Invariant(format!("locked batch {batch_id} vanished")))?;
    scope.settle_workstations().await?.commit().await?;
    crate::telemetry::notifications_enqueued(outbox_ids.len());
    let notifications_enqueued = i64::try_from(outbox_ids.len()).unwrap_or(i64::MAX);
    tracing::info!(
        cancelled,
        cancelled_task_count,
        notifications_enqueued,
        "batch cancel requested"
    );
    Ok(CancelBatchResponse {
        batch,
        cancelled,
        cancelled_task_count,
        notifications_enqueued,
        outbox_ids,
    })
}

// SPEC §5.11 and §5.12: batches cancelled under their locks.

impl BatchScope {
    /// Moves open (pending or active) batches of the locked order to cancelled (`ended_at`
    /// now) — only `batch_id` when given — and queues their workstations for re-derivation.
    /// One conditional UPDATE; answers how many batches moved.
    ///
    /// # Errors
    /// Database failures; an invariant error when a batch it reached was not locked here.
    pub(crate) async fn cancel_open_batches(
        &mut self,
        batch_id: Option<i64>,
    ) -> Result<usize, StoreError> {
        if batch_id.is_none() && !self.covers_all_open {
            return Err(StoreError::Invariant(
                "cancelling every open batch needs them all locked".to_owned(),
            ));
        }
        let moved: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE batches SET status = 'cancelled', ended_at = COALESCE(ended_at, now()) \
             WHERE order_id = $1 AND deleted_at IS NULL AND status IN ('pending', 'active') \
               AND ($2::bigint IS NULL OR id = $2) \
             RETURNING id, workstation_id",
        )
        .bind(self.order.id)
        .bind(batch_id)
        .persistent(named_statements())
        .fetch_all(&mut *self.tx)
        .await?;
        for (id, workstation_id) in &moved {
            self.require_locked(*id)?;
            self.record_batch_status(*id, BatchStatus::Cancelled, *workstation_id);
        }
        Ok(moved.len())
    }
}
