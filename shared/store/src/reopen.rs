//! Reopen tasks (SPEC §5.10): undo a mistaken completion, the likeliest error of the
//! external-device flow (a quantity typed by hand on a phone).

use keystone_domain::{
    BatchStatus, DomainError, IdempotencyKey, OrderStatus, ReopenTasksRequest, TaskGroupKey,
    TaskStatus,
};
use serde::Serialize;

use crate::complete_tasks::{BatchProgressView, OrderProgressView};
use crate::database::named_statements;
use crate::idempotency::{self, Claim, KeyOwner};
use crate::locking::{BatchScope, OpenBatches, UnitOfWork};
use crate::{Database, StoreError, StoredResponse};

/// Who asks, which decides which completions may be undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reopener {
    /// Any completed task without an episode.
    Admin { operator_id: String },
    /// Only tasks of a batch on their own workstation, completed within
    /// [`keystone_domain::COLLECTOR_REOPEN_WINDOW`].
    Collector(keystone_domain::CollectorSession),
}

/// A validated reopen call.
#[derive(Debug, Clone)]
pub struct ReopenTasks {
    pub by: Reopener,
    pub batch_id: i64,
    pub request: ReopenTasksRequest,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The 200 body of `POST /api/v1/batches/{id}/reopen-tasks`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReopenTasksResponse {
    pub batch_id: String,
    pub requested_count: i64,
    pub reopened_count: i64,
    pub group: ReopenedGroup,
    /// Most recently completed first, the order they were picked in.
    pub tasks: Vec<ReopenedTaskView>,
    pub batch: BatchProgressView,
    pub order: OrderProgressView,
}

/// The reopened group: `sop_id` and `subscene_id` echo the request's numbers, as the
/// completion's answer does.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReopenedGroup {
    pub sop_id: i64,
    pub subscene_id: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReopenedTaskView {
    pub id: String,
    pub task_id: String,
    pub status: TaskStatus,
}

impl BatchScope {
    /// How many tasks of a group may be reopened: completed, without an episode, and — with a
    /// window — completed within it. Counted only to explain a refused reopen.
    async fn reopenable_count(
        &mut self,
        batch_id: i64,
        group: TaskGroupKey,
        window_ms: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.require_locked(batch_id)?;
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM tasks \
             WHERE batch_id = $1 AND sop_id = $2 AND subscene_id = $3 \
               AND status = 'completed' AND deleted_at IS NULL AND episode_id IS NULL \
               AND ($4::bigint IS NULL OR completed_at >= now() - $4 * interval '1 millisecond')",
        )
        .bind(batch_id)
        .bind(group.sop_id)
        .bind(group.subscene_id)
        .bind(window_ms)
        .persistent(named_statements())
        .fetch_one(&mut *self.tx)
        .await?)
    }

    /// Puts the `quantity` most recently completed reopenable tasks of a group (by
    /// `completed_at DESC, id DESC`) back to pending, clearing `started_at` and `completed_at`,
    /// in one statement whatever the quantity: it locks at most `quantity` rows and changes
    /// them only when there are that many. `None` when there are fewer (nothing changed).
    ///
    /// # Locks
    /// The picked task rows, after the batch lock this scope holds.
    async fn reopen_completed_tasks(
        &mut self,
        batch_id: i64,
        group: TaskGroupKey,
        quantity: i64,
        window_ms: Option<i64>,
    ) -> Result<Option<Vec<(i64, String)>>, StoreError> {
        self.require_locked(batch_id)?;
        let tasks: Vec<(i64, String)> = sqlx::query_as(
            "WITH picked AS ( \
                 SELECT id, completed_at FROM tasks \
                 WHERE batch_id = $1 AND sop_id = $2 AND subscene_id = $3 \
                   AND status = 'completed' AND deleted_at IS NULL AND episode_id IS NULL \
                   AND ($5::bigint IS NULL \
                        OR completed_at >= now() - $5 * interval '1 millisecond') \
                 ORDER BY completed_at DESC NULLS LAST, id DESC LIMIT $4 FOR UPDATE), \
             enough AS (SELECT count(*) = $4 AS ok FROM picked), \
             reopened AS ( \
                 UPDATE tasks t SET status = 'pending', started_at = NULL, completed_at = NULL \
                 WHERE t.id = ANY (ARRAY (SELECT id FROM picked)) AND (SELECT ok FROM enough) \
                   AND t.status = 'completed' \
                 RETURNING t.id, t.task_id) \
             SELECT r.id, r.task_id FROM reopened r JOIN picked p ON p.id = r.id \
             ORDER BY p.completed_at DESC NULLS LAST, r.id DESC",
        )
        .bind(batch_id)
        .bind(group.sop_id)
        .bind(group.subscene_id)
        .bind(quantity)
        .bind(window_ms)
        .persistent(named_statements())
        .fetch_all(&mut *self.tx)
        .await?;
        if tasks.is_empty() {
            return Ok(None);
        }
        if i64::try_from(tasks.len()).ok() != Some(quantity) {
            return Err(StoreError::Invariant(format!(
                "asked to reopen {quantity} tasks of batch {batch_id}, reopened {}",
                tasks.len()
            )));
        }
        Ok(Some(tasks))
    }

    /// A completed batch that got pending tasks back becomes active again (`ended_at`
    /// cleared); answers its status now.
    async fn reactivate_batch(&mut self, batch_id: i64) -> Result<Option<BatchStatus>, StoreError> {
        self.require_locked(batch_id)?;
        let workstation: Option<i64> = sqlx::query_scalar(
            "UPDATE batches SET status = 'active', ended_at = NULL, \
                 started_at = COALESCE(started_at, now()) \
             WHERE id = $1 AND status = 'completed' RETURNING workstation_id",
        )
        .bind(batch_id)
        .persistent(named_statements())
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(workstation.map(|workstation_id| {
            self.record_batch_status(batch_id, BatchStatus::Active, workstation_id);
            BatchStatus::Active
        }))
    }

    /// The order's completed count after a reopen; an in-progress order left with no completed
    /// task goes back to created (the status `resume` would give it, SPEC §5.12).
    async fn retreat_order(&mut self) -> Result<i64, StoreError> {
        let (completed_count, moved): (i64, bool) = sqlx::query_as(
            "WITH progress AS (SELECT completed_count AS completed FROM orders WHERE id = $1), \
             moved AS ( \
                 UPDATE orders o SET status = 'created' FROM progress p \
                 WHERE o.id = $1 AND o.status = 'in_progress' AND p.completed = 0 \
                 RETURNING o.id) \
             SELECT p.completed, EXISTS (SELECT 1 FROM moved) FROM progress p",
        )
        .bind(self.order.id)
        .persistent(named_statements())
        .fetch_one(&mut *self.tx)
        .await?;
        if moved {
            self.order.status = OrderStatus::Created;
        }
        Ok(completed_count)
    }
}

/// Runs SPEC §5.10 in one transaction under the §6 lock order (order, batch, its tasks, its
/// workstation when the batch moves): the checks, the reopen, the batch back to active, the
/// order's figures, and the idempotency record. A fixed number of statements whatever the
/// quantity.
///
/// # Errors
/// [`StoreError::Rejected`] with the first rule the request breaks; nothing is changed then.
#[tracing::instrument(skip_all, fields(
    batch_id = command.batch_id,
    quantity = command.request.0.quantity,
    admin = matches!(command.by, Reopener::Admin { .. }),
))]
pub async fn reopen_tasks(
    db: &Database,
    command: ReopenTasks,
) -> Result<StoredResponse, StoreError> {
    let ReopenTasks {
        by,
        batch_id,
        request,
        idempotency_key,
    } = command;
    let ReopenTasksRequest(wanted) = request;
    let mut work = UnitOfWork::begin(db).await?;

    let (owner, seat_workstation, window) = match &by {
        Reopener::Admin { operator_id } => (KeyOwner::Admin(operator_id.clone()), None, None),
        Reopener::Collector(session) => {
            let seat = crate::identity::admitted_seat(work.conn(), session).await?;
            (
                KeyOwner::Collector(session.collector_id),
                Some(seat.workstation_id),
                Some(keystone_domain::COLLECTOR_REOPEN_WINDOW),
            )
        }
    };
    if let Some(key) = &idempotency_key {
        let fingerprint = request.fingerprint(batch_id);
        if let Claim::Replay(stored) =
            idempotency::claim(work.conn(), &owner, key, &fingerprint).await?
        {
            tracing::info!("idempotent replay");
            return Ok(stored);
        }
    }
    let seat_workstation = match seat_workstation {
        Some(workstation) => Some(workstation.ok_or(DomainError::WorkstationNotAssigned)?),
        None => None,
    };

    let (mut scope, batch) = work
        .lock_batch_through_order(batch_id, OpenBatches::Never, seat_workstation)
        .await?;
    if seat_workstation.is_some_and(|w| w != batch.workstation_id) {
        return Err(DomainError::BatchNotOnWorkstation.into());
    }
    let order_status = scope.order().status;
    if matches!(
        order_status,
        OrderStatus::Completed | OrderStatus::Cancelled
    ) {
        return Err(DomainError::OrderClosedForReopen { order_status }.into());
    }
    if matches!(batch.status, BatchStatus::Cancelled | BatchStatus::Recalled) {
        return Err(DomainError::BatchNotReopenable {
            current_status: batch.status,
        }
        .into());
    }
    let window_ms = window.map(crate::millis);
    let Some(reopened) = scope
        .reopen_completed_tasks(batch_id, wanted.group, wanted.quantity, window_ms)
        .await?
    else {
        // Too few reopenable tasks: count to say why (the only path that counts).
        if scope.group_counts(batch_id, wanted.group).await?.task_count == 0 {
            return Err(DomainError::TaskGroupNotFound.into());
        }
        return Err(DomainError::NotEnoughReopenable {
            reopenable_count: scope
                .reopenable_count(batch_id, wanted.group, window_ms)
                .await?,
            requested: wanted.quantity,
        }
        .into());
    };
    let batch_status = scope
        .reactivate_batch(batch_id)
        .await?
        .unwrap_or(batch.status);
    let order_completed = scope.retreat_order().await?;
    let order = scope.order().clone();
    let response = ReopenTasksResponse {
        batch_id: batch.batch_id,
        requested_count: wanted.quantity,
        reopened_count: wanted.quantity,
        group: ReopenedGroup {
            sop_id: wanted.group.sop_id,
            subscene_id: wanted.group.subscene_id,
        },
        tasks: reopened
            .into_iter()
            .map(|(id, task_id)| ReopenedTaskView {
                id: id.to_string(),
                task_id,
                status: TaskStatus::Pending,
            })
            .collect(),
        batch: BatchProgressView {
            id: batch_id.to_string(),
            status: batch_status,
            completed_count: batch.figures.completed_count - wanted.quantity,
            task_count: batch.figures.task_count,
        },
        order: OrderProgressView {
            id: order.id.to_string(),
            status: order.status,
            completed_count: order_completed,
            target_count: order.target_count,
        },
    };
    let body = serde_json::to_string(&response)?;

    let mut settled = scope.settle_workstations().await?;
    if let Some(key) = &idempotency_key {
        idempotency::store_response(settled.conn(), &owner, key, 200, &body).await?;
    }
    settled.commit().await?;
    crate::telemetry::tasks_reopened(wanted.quantity);
    tracing::info!(order_status = %order.status, batch_status = %batch_status, "tasks reopened");
    Ok(StoredResponse {
        status: 200,
        body,
        replayed: false,
        outbox_ids: Vec::new(),
    })
}
