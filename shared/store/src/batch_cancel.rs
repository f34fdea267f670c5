//! Cancelling a batch (SPEC §5.11): work pulled back from a workstation.

use chrono::{DateTime, Utc};
use keystone_domain::{BatchStatus, DomainError};
use serde::Serialize;

use crate::database::named_statements;
use crate::dispatch::BatchSummary;
use crate::finalize::NotificationReason;
use crate::locking::UnitOfWork;
use crate::{Database, StoreError};

/// The 200 body of `POST /api/v1/batches/{id}/cancel`.
#[derive(Debug, Clone, Serialize)]
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

#[derive(sqlx::FromRow)]
struct SummaryRow {
    batch_id: String,
    order_id: i64,
    workstation_id: i64,
    organization_id: i64,
    name: String,
    notes: Option<String>,
    metadata: Option<serde_json::Value>,
    status: String,
    task_count: i64,
    completed_count: i64,
    created_at: DateTime<Utc>,
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
    let (mut scope, batch) = work.lock_batch_through_order(batch_id, false).await?;
    let (cancelled, cancelled_task_count, outbox_ids) = match batch.status {
        BatchStatus::Cancelled => (false, 0, Vec::new()),
        BatchStatus::Pending | BatchStatus::Active => {
            let (count, outbox_ids) = scope
                .cancel_runnable_tasks(Some(batch_id), NotificationReason::BatchCancelled)
                .await?;
            scope.cancel_locked_batch(batch_id).await?;
            (true, count, outbox_ids)
        }
        current_status => {
            return Err(DomainError::BatchNotCancellable { current_status }.into());
        }
    };
    let row: SummaryRow = sqlx::query_as(
        "SELECT b.batch_id, b.order_id, b.workstation_id, b.organization_id, b.name, b.notes, \
                b.metadata, b.status, b.created_at, \
                (SELECT count(*) FROM tasks t WHERE t.batch_id = b.id AND t.deleted_at IS NULL) \
                    AS task_count, \
                (SELECT count(*) FROM tasks t WHERE t.batch_id = b.id AND t.deleted_at IS NULL \
                    AND t.status = 'completed') AS completed_count \
         FROM batches b WHERE b.id = $1",
    )
    .bind(batch_id)
    .persistent(named_statements())
    .fetch_one(scope.conn())
    .await?;
    scope.settle_workstations().await?.commit().await?;
    let notifications_enqueued = i64::try_from(outbox_ids.len()).unwrap_or(i64::MAX);
    tracing::info!(
        cancelled,
        cancelled_task_count,
        notifications_enqueued,
        "batch cancel requested"
    );
    Ok(CancelBatchResponse {
        batch: BatchSummary {
            id: batch_id.to_string(),
            batch_id: row.batch_id,
            order_id: row.order_id.to_string(),
            workstation_id: row.workstation_id.to_string(),
            organization_id: row.organization_id.to_string(),
            name: row.name,
            notes: row.notes,
            metadata: row.metadata,
            status: row.status.parse()?,
            task_count: row.task_count,
            completed_count: row.completed_count,
            created_at: row.created_at,
        },
        cancelled,
        cancelled_task_count,
        notifications_enqueued,
        outbox_ids,
    })
}
