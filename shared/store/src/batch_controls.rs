//! An admin's controls over one batch: cancel (work pulled back from a workstation), recall,
//! edit and delete. Each locks the order, then the batch, then its tasks, then its
//! workstation, and runs a fixed number of statements.

use keystone_domain::batches::{BatchDetailsEdit, BatchUpdateRequest};
use keystone_domain::{BatchStatus, DomainError};
use serde::Serialize;
use sqlx::types::Json;

use crate::database::named_statements;
use crate::dispatch::{BatchSummary, read_batch_summary};
use crate::finalize::NotificationReason;
use crate::locking::{BatchScope, LockedBatch, OpenBatches, UnitOfWork};
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
    update_batch(
        db,
        batch_id,
        &BatchUpdateRequest {
            details: BatchDetailsEdit::default(),
            cancel: true,
        },
    )
    .await
}

/// Edits a batch's name, notes and metadata (any status) and, for `{"status":"cancelled"}`,
/// cancels it exactly as [`cancel_batch`] does — all in one transaction: a refused cancel
/// applies no edit either. Answers the §5.11 body; `cancelled` is true only when this call
/// cancelled the batch.
///
/// # Errors
/// [`DomainError::BatchNotFound`]; [`DomainError::BatchNotCancellable`] when a cancel meets a
/// completed or recalled batch; database failures.
#[tracing::instrument(skip_all, fields(batch_id, cancel = request.cancel))]
pub async fn update_batch(
    db: &Database,
    batch_id: i64,
    request: &BatchUpdateRequest,
) -> Result<CancelBatchResponse, StoreError> {
    let work = UnitOfWork::begin(db).await?;
    let (mut scope, batch) = work
        .lock_batch_through_order(batch_id, OpenBatches::Never, None)
        .await?;
    let pulled = if request.cancel {
        scope.cancel_locked_batch(&batch).await?
    } else {
        PulledBack::default()
    };
    if !request.details.is_empty() {
        scope.edit_batch_details(batch_id, &request.details).await?;
    }
    let (batch, _) = read_batch_summary(scope.conn(), batch_id, None)
        .await?
        .ok_or_else(|| StoreError::Invariant(format!("locked batch {batch_id} vanished")))?;
    scope.settle_workstations().await?.commit().await?;
    crate::telemetry::notifications_enqueued(pulled.outbox_ids.len());
    let notifications_enqueued = pulled.notifications_enqueued();
    tracing::info!(
        cancelled = pulled.moved,
        cancelled_task_count = pulled.cancelled_task_count,
        notifications_enqueued,
        edited = !request.details.is_empty(),
        "batch updated"
    );
    Ok(CancelBatchResponse {
        batch,
        cancelled: pulled.moved,
        cancelled_task_count: pulled.cancelled_task_count,
        notifications_enqueued,
        outbox_ids: pulled.outbox_ids,
    })
}

/// The 200 body of `POST /api/v1/batches/{id}/recall`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecallBatchResponse {
    pub batch: BatchSummary,
    /// False when the batch was already recalled: nothing changed.
    pub recalled: bool,
    pub cancelled_task_count: i64,
    pub notifications_enqueued: i64,
    /// Outbox rows written, for the publisher to send right after commit.
    #[serde(skip)]
    pub outbox_ids: Vec<i64>,
}

/// Recalls an active or completed batch in one transaction under the §6 lock order: its
/// runnable tasks become cancelled, recorder commands go out through the outbox for its ready
/// and in-progress tasks on Axon robots (`batch_recalled`), the batch becomes recalled
/// (`ended_at` set if empty) and its workstation is re-derived. Completed tasks stay completed
/// and still count for the order, which does not move back.
///
/// # Errors
/// [`DomainError::BatchNotFound`]; [`DomainError::BatchNotRecallable`] for a pending or
/// cancelled batch; database failures.
#[tracing::instrument(skip_all, fields(batch_id))]
pub async fn recall_batch(db: &Database, batch_id: i64) -> Result<RecallBatchResponse, StoreError> {
    let work = UnitOfWork::begin(db).await?;
    let (mut scope, batch) = work
        .lock_batch_through_order(batch_id, OpenBatches::Never, None)
        .await?;
    let pulled = match batch.status {
        BatchStatus::Recalled => PulledBack::default(),
        BatchStatus::Active | BatchStatus::Completed => {
            let (cancelled_task_count, outbox_ids) = scope
                .cancel_runnable_tasks(Some(batch_id), NotificationReason::BatchRecalled)
                .await?;
            scope.move_to_recalled(&batch).await?;
            PulledBack {
                moved: true,
                cancelled_task_count,
                outbox_ids,
            }
        }
        current_status @ (BatchStatus::Pending | BatchStatus::Cancelled) => {
            return Err(DomainError::BatchNotRecallable { current_status }.into());
        }
    };
    let (batch, _) = read_batch_summary(scope.conn(), batch_id, None)
        .await?
        .ok_or_else(|| StoreError::Invariant(format!("locked batch {batch_id} vanished")))?;
    scope.settle_workstations().await?.commit().await?;
    crate::telemetry::notifications_enqueued(pulled.outbox_ids.len());
    let notifications_enqueued = pulled.notifications_enqueued();
    tracing::info!(
        recalled = pulled.moved,
        cancelled_task_count = pulled.cancelled_task_count,
        notifications_enqueued,
        "batch recall requested"
    );
    Ok(RecallBatchResponse {
        batch,
        recalled: pulled.moved,
        cancelled_task_count: pulled.cancelled_task_count,
        notifications_enqueued,
        outbox_ids: pulled.outbox_ids,
    })
}

/// Deletes (softly) a pending or cancelled batch without completed tasks, and its tasks: the
/// order's and groups' counters follow (the counter triggers see the tasks leave), so the
/// order can take those tasks again. A pending batch's runnable tasks are cancelled first
/// exactly as [`cancel_batch`] does, so a device recording one of them is told
/// (`batch_cancelled`). Answers the outbox rows to publish.
///
/// # Errors
/// [`DomainError::BatchNotFound`] (also for a batch already deleted);
/// [`DomainError::BatchNotDeletable`] for an active, completed or recalled batch, or one with
/// a completed task; database failures.
#[tracing::instrument(skip_all, fields(batch_id))]
pub async fn delete_batch(db: &Database, batch_id: i64) -> Result<Vec<i64>, StoreError> {
    let work = UnitOfWork::begin(db).await?;
    let (mut scope, batch) = work
        .lock_batch_through_order(batch_id, OpenBatches::Never, None)
        .await?;
    let completed_count = batch.figures.completed_count;
    if !matches!(batch.status, BatchStatus::Pending | BatchStatus::Cancelled) || completed_count > 0
    {
        return Err(DomainError::BatchNotDeletable {
            current_status: batch.status,
            completed_count,
        }
        .into());
    }
    let pulled = scope.cancel_locked_batch(&batch).await?;
    scope.soft_delete_batch(&batch).await?;
    scope.settle_workstations().await?.commit().await?;
    crate::telemetry::notifications_enqueued(pulled.outbox_ids.len());
    tracing::info!(
        cancelled_task_count = pulled.cancelled_task_count,
        notifications_enqueued = pulled.notifications_enqueued(),
        "batch deleted"
    );
    Ok(pulled.outbox_ids)
}

/// What pulling work back from one batch changed.
#[derive(Debug, Default)]
struct PulledBack {
    /// Whether this transaction moved the batch.
    moved: bool,
    cancelled_task_count: i64,
    outbox_ids: Vec<i64>,
}

impl PulledBack {
    fn notifications_enqueued(&self) -> i64 {
        i64::try_from(self.outbox_ids.len()).unwrap_or(i64::MAX)
    }
}

impl BatchScope {
    /// The §5.11 move on a locked batch: pending or active → cancelled with its runnable tasks
    /// and their recorder commands; already cancelled → nothing.
    ///
    /// # Errors
    /// [`DomainError::BatchNotCancellable`] for a completed or recalled batch.
    async fn cancel_locked_batch(&mut self, batch: &LockedBatch) -> Result<PulledBack, StoreError> {
        match batch.status {
            BatchStatus::Cancelled => Ok(PulledBack::default()),
            BatchStatus::Pending | BatchStatus::Active => {
                let (cancelled_task_count, outbox_ids) = self
                    .cancel_runnable_tasks(Some(batch.id), NotificationReason::BatchCancelled)
                    .await?;
                if self.cancel_open_batches(Some(batch.id)).await? != 1 {
                    return Err(StoreError::Invariant(format!(
                        "batch {} was not open under its lock",
                        batch.id
                    )));
                }
                Ok(PulledBack {
                    moved: true,
                    cancelled_task_count,
                    outbox_ids,
                })
            }
            current_status => Err(DomainError::BatchNotCancellable { current_status }.into()),
        }
    }

    /// Active or completed → recalled (`ended_at` set if empty), one conditional UPDATE.
    ///
    /// # Errors
    /// An invariant error when the locked batch was not in a recallable status.
    async fn move_to_recalled(&mut self, batch: &LockedBatch) -> Result<(), StoreError> {
        let moved = sqlx::query(
            "UPDATE batches SET status = 'recalled', ended_at = COALESCE(ended_at, now()) \
             WHERE id = $1 AND order_id = $2 AND deleted_at IS NULL \
               AND status IN ('active', 'completed')",
        )
        .bind(batch.id)
        .bind(self.order().id)
        .persistent(named_statements())
        .execute(self.conn())
        .await?
        .rows_affected();
        if moved != 1 {
            return Err(StoreError::Invariant(format!(
                "batch {} was not recallable under its lock",
                batch.id
            )));
        }
        self.record_batch_status(batch.id, BatchStatus::Recalled, batch.workstation_id);
        Ok(())
    }

    /// Sets the fields the edit names; the others stay. One UPDATE of the locked row.
    ///
    /// # Errors
    /// Database failures; an invariant error when the locked batch is gone.
    async fn edit_batch_details(
        &mut self,
        batch_id: i64,
        edit: &BatchDetailsEdit,
    ) -> Result<(), StoreError> {
        self.require_locked(batch_id)?;
        let edited = sqlx::query(
            "UPDATE batches SET name = COALESCE($2, name), \
                 notes = CASE WHEN $3 THEN $4 ELSE notes END, \
                 metadata = CASE WHEN $5 THEN $6 ELSE metadata END \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(batch_id)
        .bind(edit.name.as_deref())
        .bind(edit.notes.is_some())
        .bind(edit.notes.clone().flatten())
        .bind(edit.metadata.is_some())
        .bind(edit.metadata.clone().flatten().map(Json))
        .persistent(named_statements())
        .execute(self.conn())
        .await?
        .rows_affected();
        if edited != 1 {
            return Err(StoreError::Invariant(format!(
                "locked batch {batch_id} vanished"
            )));
        }
        Ok(())
    }

    /// Soft-deletes a locked batch without completed tasks and its live tasks (locked in id
    /// order first); the counter triggers take the tasks off the order, batch and groups.
    ///
    /// # Errors
    /// An invariant error when the batch was not deletable under its lock.
    async fn soft_delete_batch(&mut self, batch: &LockedBatch) -> Result<(), StoreError> {
        let deleted: bool = sqlx::query_scalar(
            "WITH victims AS ( \
                 SELECT id FROM tasks WHERE batch_id = $1 AND deleted_at IS NULL \
                 ORDER BY id FOR UPDATE), \
             gone AS ( \
                 UPDATE tasks t SET deleted_at = now() \
                 WHERE t.id = ANY (ARRAY (SELECT id FROM victims)) AND t.status <> 'completed' \
                 RETURNING t.id) \
             SELECT (SELECT count(*) FROM gone) = (SELECT count(*) FROM victims)",
        )
        .bind(batch.id)
        .persistent(named_statements())
        .fetch_one(self.conn())
        .await?;
        let moved = sqlx::query(
            "UPDATE batches SET deleted_at = now() \
             WHERE id = $1 AND order_id = $2 AND deleted_at IS NULL \
               AND status IN ('pending', 'cancelled')",
        )
        .bind(batch.id)
        .bind(self.order().id)
        .persistent(named_statements())
        .execute(self.conn())
        .await?
        .rows_affected();
        if !deleted || moved != 1 {
            return Err(StoreError::Invariant(format!(
                "batch {} was not deletable under its lock",
                batch.id
            )));
        }
        self.record_batch_status(batch.id, batch.status, batch.workstation_id);
        Ok(())
    }
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
