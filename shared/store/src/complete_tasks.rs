//! Complete task group (SPEC §5.1): a collector marks N pending tasks of a group done.

use chrono::{DateTime, Utc};
use keystone_domain::{
    BatchStatus, CollectorSession, CompleteTasksRequest, DomainError, IdempotencyKey, OrderStatus,
    TaskGroupKey, TaskStatus,
};
use serde::Serialize;

use crate::database::named_statements;
use crate::idempotency::{self, Claim, KeyOwner};
use crate::locking::{BatchScope, OpenBatches, OrderAdvance, UnitOfWork};
use crate::{Database, StoreError, StoredResponse};

/// A validated complete-tasks call.
#[derive(Debug, Clone)]
pub struct CompleteTaskGroup {
    pub session: CollectorSession,
    pub batch_id: i64,
    pub request: CompleteTasksRequest,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The 200 body of `POST /api/v1/batches/{id}/complete-tasks`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CompleteTasksResponse {
    pub batch_id: String,
    pub requested_count: i64,
    pub completed_count: i64,
    /// Always 0: completing never creates task rows. Kept for Keystone clients.
    pub created_count: i64,
    pub group: GroupView,
    pub tasks: Vec<CompletedTaskView>,
    pub batch: BatchProgressView,
    pub order: OrderProgressView,
}

/// The completed group: `sop_id` and `subscene_id` echo the request's numbers, so a client
/// matches the answer to what it sent (every other id in answers is a string).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    pub sop_id: i64,
    pub subscene_id: i64,
    pub scene_name: String,
    pub subscene_name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CompletedTaskView {
    pub id: String,
    pub task_id: String,
    pub status: TaskStatus,
    pub completed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchProgressView {
    pub id: String,
    pub status: BatchStatus,
    pub completed_count: i64,
    pub task_count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderProgressView {
    pub id: String,
    pub status: OrderStatus,
    pub completed_count: i64,
    pub target_count: i64,
}

/// Runs SPEC §5.1 in one transaction: checks in the table's order, completion, batch and
/// order advancement, finalization when this request completed the order, workstation
/// re-derivation, and the idempotency record.
///
/// The number of statements does not depend on `quantity`.
///
/// # Errors
/// [`StoreError::Rejected`] with the first rule the request breaks; nothing is changed then.
#[tracing::instrument(skip_all, fields(
    collector_id = command.session.collector_id,
    batch_id = command.batch_id,
    quantity = command.request.quantity,
    idempotent = command.idempotency_key.is_some(),
))]
pub async fn complete_task_group(
    db: &Database,
    command: CompleteTaskGroup,
) -> Result<StoredResponse, StoreError> {
    let CompleteTaskGroup {
        session,
        batch_id,
        request,
        idempotency_key,
    } = command;
    let collector_id = session.collector_id;
    let mut work = UnitOfWork::begin(db).await?;
    // Every open batch is locked too when this request may complete the order, because
    // finalization changes all of them; otherwise the batch alone.
    let open = OpenBatches::IfCompleting(request.quantity);

    let (seat, mut scope, batch) = match &idempotency_key {
        // The common case: seat, session and locks in one statement.
        None => {
            work.lock_batch_of_collector(&session, batch_id, open)
                .await?
        }
        // The key is claimed between the session check (nothing is recorded under the
        // collector's id before it) and the locks (a repeat waits for the first on the key, not
        // on the order it would then deadlock with).
        Some(key) => {
            let seat = crate::identity::admitted_seat(work.conn(), &session).await?;
            let fingerprint = request.fingerprint(batch_id);
            if let Claim::Replay(stored) = idempotency::claim(
                work.conn(),
                &KeyOwner::Collector(collector_id),
                key,
                &fingerprint,
            )
            .await?
            {
                tracing::info!("idempotent replay");
                return Ok(stored);
            }
            let workstation_id = seat
                .workstation_id
                .ok_or(DomainError::WorkstationNotAssigned)?;
            let (scope, batch) = work
                .lock_batch_through_order(batch_id, open, Some(workstation_id))
                .await?;
            (seat, scope, batch)
        }
    };
    let workstation_id = seat
        .workstation_id
        .ok_or(DomainError::WorkstationNotAssigned)?;

    if batch.workstation_id != workstation_id {
        return Err(DomainError::BatchNotOnWorkstation.into());
    }
    if seat.requires_axon {
        return Err(DomainError::RequiresAxon.into());
    }
    if scope.order().status == OrderStatus::Cancelled {
        return Err(DomainError::OrderCancelled {
            order_status: scope.order().status,
        }
        .into());
    }
    let figures = batch.figures;
    if !batch.status.is_open() {
        return Err(DomainError::BatchNotOpen {
            current_status: batch.status,
            completed_count: figures.completed_count,
            task_count: figures.task_count,
        }
        .into());
    }
    if request.quantity > figures.task_count {
        return Err(DomainError::QuantityExceedsBatch {
            task_count: figures.task_count,
            requested: request.quantity,
        }
        .into());
    }

    let Some(completion) = scope
        .complete_pending_tasks(batch_id, request.group, request.quantity)
        .await?
    else {
        // Too few pending tasks: count the group to say why (the only path that counts).
        let group = scope.group_counts(batch_id, request.group).await?;
        if group.task_count == 0 {
            return Err(DomainError::TaskGroupNotFound.into());
        }
        return Err(DomainError::NotEnoughPending {
            pending_count: group.pending_count,
            requested: request.quantity,
        }
        .into());
    };
    let advance = completion.order;
    let finalized = advance.completion.is_some();
    let outbox_ids = match advance.completion {
        // The open batches were not locked because the unlocked read of this batch was stale
        // (tasks were added while the request waited for the order): nothing is kept, and a
        // retry locks them.
        Some(_) if !scope.covers_all_open => {
            return Err(DomainError::BatchChangedConcurrently.into());
        }
        Some(proof) => scope.finalize_order(proof).await?.outbox_ids,
        None => Vec::new(),
    };
    let completed = completion.tasks;

    let (scene_name, subscene_name) = completed
        .first()
        .map(|t| (t.scene_name.clone(), t.subscene_name.clone()))
        .unwrap_or_default();
    let batch_status = scope
        .batch(batch_id)
        .map_or(completion.batch_status, |b| b.status);
    let order = scope.order().clone();
    let response = CompleteTasksResponse {
        batch_id: batch.batch_id,
        requested_count: request.quantity,
        completed_count: request.quantity,
        created_count: 0,
        group: GroupView {
            sop_id: request.group.sop_id,
            subscene_id: request.group.subscene_id,
            scene_name,
            subscene_name,
        },
        tasks: completed
            .into_iter()
            .map(|t| CompletedTaskView {
                id: t.id.to_string(),
                task_id: t.task_id,
                status: TaskStatus::Completed,
                completed_at: t.completed_at,
            })
            .collect(),
        batch: BatchProgressView {
            id: batch_id.to_string(),
            status: batch_status,
            completed_count: completion.batch_completed_count,
            task_count: figures.task_count,
        },
        order: OrderProgressView {
            id: order.id.to_string(),
            status: order.status,
            completed_count: advance.completed_count,
            target_count: order.target_count,
        },
    };
    let body = serde_json::to_string(&response)?;

    let mut settled = scope.settle_workstations().await?;
    if let Some(key) = &idempotency_key {
        idempotency::store_response(
            settled.conn(),
            &KeyOwner::Collector(collector_id),
            key,
            200,
            &body,
        )
        .await?;
    }
    settled.commit().await?;
    crate::telemetry::tasks_completed(request.quantity);
    if finalized {
        crate::telemetry::order_finalized(outbox_ids.len());
    }
    tracing::info!(order_status = %order.status, batch_status = %batch_status, "tasks completed");
    Ok(StoredResponse {
        status: 200,
        body,
        replayed: false,
        outbox_ids,
    })
}

// SPEC §5.1 on the ladder: the statements of a completion, under the order and batch locks.

/// A task group's live and pending tasks, read only to explain a refused completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct GroupCounts {
    pub task_count: i64,
    pub pending_count: i64,
}

/// A task completed by [`BatchScope::complete_pending_tasks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedTask {
    pub id: i64,
    pub task_id: String,
    pub completed_at: chrono::DateTime<chrono::Utc>,
    pub scene_name: String,
    pub subscene_name: String,
}

/// What [`BatchScope::complete_pending_tasks`] did.
#[derive(Debug)]
pub struct Completion {
    pub tasks: Vec<CompletedTask>,
    /// The batch's status and completed count afterwards.
    pub batch_status: BatchStatus,
    pub batch_completed_count: i64,
    /// The order's completed count afterwards, and the proof when this completed it.
    pub order: OrderAdvance,
}

#[derive(sqlx::FromRow)]
struct CompletedRow {
    id: i64,
    task_id: String,
    completed_at: chrono::DateTime<chrono::Utc>,
    scene_name: String,
    subscene_name: String,
    batch_workstation_id: Option<i64>,
    order_moved_to: Option<String>,
}

impl BatchScope {
    /// One group's live and pending tasks in a locked batch, from the group counters.
    ///
    /// # Errors
    /// Database failures; an invariant error if the batch is not locked here.
    pub async fn group_counts(
        &mut self,
        batch_id: i64,
        group: TaskGroupKey,
    ) -> Result<GroupCounts, StoreError> {
        self.require_locked(batch_id)?;
        Ok(sqlx::query_as(
            "SELECT COALESCE(sum(task_count), 0)::bigint AS task_count, \
                    COALESCE(sum(task_count) FILTER (WHERE status = 'pending'), 0)::bigint \
                        AS pending_count \
             FROM task_group_counts WHERE batch_id = $1 AND sop_id = $2 AND subscene_id = $3",
        )
        .bind(batch_id)
        .bind(group.sop_id)
        .bind(group.subscene_id)
        .persistent(named_statements())
        .fetch_one(&mut *self.tx)
        .await?)
    }

    /// Completes the `quantity` earliest pending tasks of a group (by `assigned_at`, then
    /// `id`) and moves the batch and the order along (SPEC §5.1), in one statement whatever the
    /// quantity. It locks at most `quantity` task rows (`LIMIT`) and changes anything only when
    /// there are that many; `None` when the group has fewer pending tasks (nothing changed;
    /// [`Self::group_counts`] says why).
    ///
    /// The moves are decided from the counters this scope locked (exact under the locks) plus
    /// `quantity`, and applied as conditional UPDATEs in the same statement:
    /// - the batch: pending → active (stamping `started_at`), and → completed (stamping
    ///   `ended_at`) once no live task is unfinished;
    /// - the order: created → in_progress, and → completed once `completed_count >=
    ///   target_count`, handing out the [`OrderCompletion`] that finalization needs. Paused and
    ///   cancelled orders never move.
    ///
    /// # Locks
    /// The picked task rows, after the batch lock this scope holds.
    ///
    /// # Errors
    /// Database failures; an invariant error if the batch is not locked here or a decided move
    /// did not happen.
    pub async fn complete_pending_tasks(
        &mut self,
        batch_id: i64,
        group: TaskGroupKey,
        quantity: i64,
    ) -> Result<Option<Completion>, StoreError> {
        let batch = self
            .batch(batch_id)
            .cloned()
            .ok_or_else(|| StoreError::Invariant(format!("batch {batch_id} is not locked")))?;
        let figures = batch.figures;
        let completed_after = figures.completed_count.saturating_add(quantity);
        let done = figures.task_count > 0
            && figures.task_count
                == completed_after
                    .saturating_add(figures.failed_count)
                    .saturating_add(figures.cancelled_count);
        let batch_to = match (batch.status, done) {
            (BatchStatus::Pending | BatchStatus::Active, true) => Some(BatchStatus::Completed),
            (BatchStatus::Pending, false) => Some(BatchStatus::Active),
            _ => None,
        };
        let order_completed_after = self.order.completed_count.saturating_add(quantity);
        let reaches_target = order_completed_after >= self.order.target_count;
        let order_to = match self.order.status {
            OrderStatus::Created | OrderStatus::InProgress if reaches_target => {
                Some(OrderStatus::Completed)
            }
            OrderStatus::Created => Some(OrderStatus::InProgress),
            _ => None,
        };
        // One statement in a database function of its own (migration 20261207000009): there
        // its generic plan is kept for the session, where as a statement it was planned again
        // on every call.
        let rows: Vec<CompletedRow> = sqlx::query_as(
            "SELECT id, task_id, completed_at, scene_name, subscene_name, batch_workstation_id, \
                    order_moved_to \
             FROM keystone_complete_pending_tasks($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(batch_id)
        .bind(group.sop_id)
        .bind(group.subscene_id)
        .bind(quantity)
        .bind(batch.status.as_str())
        .bind(batch_to.map(BatchStatus::as_str))
        .bind(self.order.id)
        .bind(self.order.status.as_str())
        .bind(order_to.map(OrderStatus::as_str))
        .persistent(named_statements())
        .fetch_all(&mut *self.tx)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        if i64::try_from(rows.len()).ok() != Some(quantity) {
            return Err(StoreError::Invariant(format!(
                "asked to complete {quantity} tasks of batch {batch_id}, completed {}",
                rows.len()
            )));
        }
        let (batch_workstation, order_moved_to) =
            (first.batch_workstation_id, first.order_moved_to.clone());
        if batch_to.is_some() != batch_workstation.is_some()
            || order_to.is_some() != order_moved_to.is_some()
        {
            return Err(StoreError::Invariant(format!(
                "batch {batch_id} or its order did not make the move decided under their locks"
            )));
        }
        if let (Some(status), Some(workstation_id)) = (batch_to, batch_workstation) {
            self.record_batch_status(batch_id, status, workstation_id);
        }
        let advance = self.record_order_move(order_completed_after, order_moved_to.as_deref())?;
        Ok(Some(Completion {
            tasks: rows
                .into_iter()
                .map(|row| CompletedTask {
                    id: row.id,
                    task_id: row.task_id,
                    completed_at: row.completed_at,
                    scene_name: row.scene_name,
                    subscene_name: row.subscene_name,
                })
                .collect(),
            batch_status: batch_to.unwrap_or(batch.status),
            batch_completed_count: completed_after,
            order: advance,
        }))
    }
}
