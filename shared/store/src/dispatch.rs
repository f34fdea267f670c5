//! Admin dispatch: adjust a batch's task groups (SPEC §5.2), create a batch (§5.3) and
//! finalize an order on decision (§5.4).

use chrono::{DateTime, Utc};
use keystone_domain::{
    AdjustBatchRequest, BatchStatus, CollectorSession, CollectorStanding, CreateBatchRequest,
    DomainError, GroupQuantity, IdempotencyKey, MAX_TASKS_PER_ADJUST, OrderStatus,
};
use serde::Serialize;

use crate::complete_tasks::OrderProgressView;
use crate::idempotency::{self, Claim, KeyOwner};
use crate::locking::{BatchSelection, OpenBatches, UnitOfWork};
use crate::task_edits::{CreatedTaskView, NewBatch};
use crate::{Database, StoreError, StoredResponse};

/// The 200 body of `POST /api/v1/batches/{id}/tasks`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdjustBatchResponse {
    pub created_tasks: Vec<CreatedTaskView>,
    /// Public ids (`task_…`) of the tasks removed: soft-deleted, they no longer appear in any
    /// list or count.
    pub deleted_task_ids: Vec<String>,
}

/// Sets the target live task count of each named group of a batch (SPEC §5.2), in one
/// transaction: locked-task floors, quota, completed-order rule, one soft-delete statement
/// and one insert statement whatever the quantities, then batch advancement.
///
/// # Errors
/// [`StoreError::Rejected`] with the first rule the edit breaks; nothing is changed then.
#[tracing::instrument(skip_all, fields(batch_id, groups = request.targets.len()))]
pub async fn adjust_batch_tasks(
    db: &Database,
    batch_id: i64,
    request: AdjustBatchRequest,
) -> Result<AdjustBatchResponse, StoreError> {
    let work = UnitOfWork::begin(db).await?;
    let (mut scope, batch) = work
        .lock_batch_through_order(batch_id, OpenBatches::Never, None)
        .await?;
    if !batch.status.is_open() {
        return Err(DomainError::BatchNotEditable {
            current_status: batch.status,
        }
        .into());
    }

    let figures = scope.group_figures(batch_id, &request.targets).await?;
    let mut additions = Vec::new();
    let mut removals = Vec::new();
    for (target, current) in request.targets.iter().zip(&figures) {
        if target.quantity < current.locked {
            return Err(DomainError::BelowLockedTasks {
                sop_id: target.group.sop_id,
                subscene_id: target.group.subscene_id,
                locked_count: current.locked,
                requested: target.quantity,
            }
            .into());
        }
        let delta = target.quantity - current.live;
        if delta > 0 {
            additions.push(GroupQuantity {
                group: target.group,
                quantity: delta,
            });
        } else if delta < 0 {
            removals.push(GroupQuantity {
                group: target.group,
                quantity: -delta,
            });
        }
    }

    if !additions.is_empty() {
        // Checked: quantities up to i64::MAX each must neither wrap nor reach the insert.
        let added = additions
            .iter()
            .try_fold(0_i64, |sum, g| sum.checked_add(g.quantity))
            .unwrap_or(i64::MAX);
        if added > MAX_TASKS_PER_ADJUST {
            return Err(DomainError::TooManyTasksAdded {
                requested: added,
                max: MAX_TASKS_PER_ADJUST,
            }
            .into());
        }
        match scope.order().status {
            OrderStatus::Completed => return Err(DomainError::OrderCompletedNoInsert.into()),
            OrderStatus::Cancelled => return Err(DomainError::OrderCancelledNoInsert.into()),
            OrderStatus::Created | OrderStatus::InProgress | OrderStatus::Paused => {}
        }
        scope.check_group_references(&additions).await?;
        let (batch_total, order_total) = (batch.figures.task_count, scope.order().task_count);
        // Removals are bounded by live counts and `added` by the limit above: no overflow.
        let removed: i64 = removals.iter().map(|g| g.quantity).sum();
        let edited_total = batch_total + added - removed;
        let target = scope.order().target_count;
        let others = order_total - batch_total;
        if edited_total > batch_total && others + edited_total > target {
            return Err(DomainError::BatchQuotaExceeded {
                target_count: target,
                order_task_count: order_total,
                current_batch_task_count: batch_total,
                max_batch_target: target - others,
                requested_batch_task_count: edited_total,
                remaining_assignable: target - order_total,
            }
            .into());
        }
    }

    let deleted_task_ids = if removals.is_empty() {
        Vec::new()
    } else {
        scope
            .soft_delete_newest_pending(batch_id, &removals)
            .await?
    };
    let created_tasks = if additions.is_empty() {
        Vec::new()
    } else {
        scope.insert_pending_tasks(batch_id, &additions).await?
    };
    scope.complete_batch_if_done(batch_id).await?;
    scope.settle_workstations().await?.commit().await?;
    tracing::info!(
        created = created_tasks.len(),
        deleted = deleted_task_ids.len(),
        "batch adjusted"
    );
    Ok(AdjustBatchResponse {
        created_tasks,
        deleted_task_ids,
    })
}

/// A batch as create-batch answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchSummary {
    pub id: String,
    pub batch_id: String,
    pub order_id: String,
    pub workstation_id: String,
    pub organization_id: String,
    pub name: String,
    pub notes: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub status: BatchStatus,
    pub task_count: i64,
    pub completed_count: i64,
    pub created_at: DateTime<Utc>,
}

/// A batch summary row, and the standing of the collector asking when one is (one statement
/// answers both; every batch column is `NULL` when there is no such batch).
#[derive(sqlx::FromRow)]
struct BatchSummaryRow {
    batch_id: Option<String>,
    order_id: Option<i64>,
    workstation_id: Option<i64>,
    organization_id: Option<i64>,
    name: Option<String>,
    notes: Option<String>,
    metadata: Option<serde_json::Value>,
    status: Option<String>,
    task_count: Option<i64>,
    completed_count: Option<i64>,
    created_at: Option<DateTime<Utc>>,
    collector_id: Option<i64>,
    caller_status: Option<String>,
    caller_revoked_at: Option<DateTime<Utc>>,
}

/// A live batch's summary as it stands in this transaction, with the collector seated at its
/// workstation (who may read it). One statement, which also admits `caller`'s session
/// (SPEC §4) before saying anything about the batch.
///
/// # Errors
/// [`DomainError::CollectorNotFound`], [`DomainError::SessionEnded`]; database failures, and
/// an unknown status in the row.
pub(crate) async fn read_batch_summary(
    conn: &mut sqlx::PgConnection,
    batch_id: i64,
    caller: Option<&CollectorSession>,
) -> Result<Option<(BatchSummary, Option<i64>)>, StoreError> {
    let row: BatchSummaryRow = sqlx::query_as(
        "SELECT b.batch_id, b.order_id, b.workstation_id, b.organization_id, b.name, b.notes, \
                b.metadata, b.status, b.created_at, w.data_collector_id AS collector_id, \
                b.task_count, b.completed_count, \
                caller.status AS caller_status, caller.tokens_revoked_at AS caller_revoked_at \
         FROM (SELECT $2::bigint AS id) asking \
         LEFT JOIN data_collectors caller ON caller.id = asking.id AND caller.deleted_at IS NULL \
         LEFT JOIN batches b ON b.id = $1 AND b.deleted_at IS NULL \
         LEFT JOIN workstations w ON w.id = b.workstation_id AND w.deleted_at IS NULL",
    )
    .bind(batch_id)
    .bind(caller.map(|c| c.collector_id))
    .persistent(crate::database::named_statements())
    .fetch_one(&mut *conn)
    .await?;
    if let Some(session) = caller {
        let standing = row.caller_status.clone().map(|status| CollectorStanding {
            status,
            tokens_revoked_at: row.caller_revoked_at,
        });
        session.admit(standing.as_ref())?;
    }
    let (
        Some(public_id),
        Some(order_id),
        Some(workstation_id),
        Some(organization_id),
        Some(name),
        Some(status),
        Some(created_at),
    ) = (
        row.batch_id,
        row.order_id,
        row.workstation_id,
        row.organization_id,
        row.name,
        row.status,
        row.created_at,
    )
    else {
        return Ok(None);
    };
    let summary = BatchSummary {
        id: batch_id.to_string(),
        batch_id: public_id,
        order_id: order_id.to_string(),
        workstation_id: workstation_id.to_string(),
        organization_id: organization_id.to_string(),
        name,
        notes: row.notes,
        metadata: row.metadata,
        status: status.parse()?,
        task_count: row.task_count.unwrap_or_default(),
        completed_count: row.completed_count.unwrap_or_default(),
        created_at,
    };
    Ok(Some((summary, row.collector_id)))
}

/// The 201 body of `POST /api/v1/batches`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreateBatchResponse {
    pub batch: BatchSummary,
    pub tasks: Vec<CreatedTaskView>,
}

/// Creates a pending batch and all its tasks atomically (SPEC §5.3), within the order's
/// remaining assignable count.
///
/// # Errors
/// [`StoreError::Rejected`] with the first rule the request breaks; nothing is created then.
#[tracing::instrument(skip_all, fields(order_id = request.order_id, workstation_id = request.workstation_id))]
pub async fn create_batch(
    db: &Database,
    request: CreateBatchRequest,
    admin_operator_id: &str,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<StoredResponse, StoreError> {
    let total = request.total();
    let mut work = UnitOfWork::begin(db).await?;
    let owner = KeyOwner::Admin(admin_operator_id.to_owned());
    if let Some(key) = idempotency_key
        && let Claim::Replay(stored) =
            idempotency::claim(work.conn(), &owner, key, &request.fingerprint()).await?
    {
        tracing::info!("idempotent replay");
        return Ok(stored);
    }
    let mut order = work
        .lock_order(request.order_id)
        .await?
        .ok_or(DomainError::UnknownOrder)?;
    let order_status = order.order().status;
    if matches!(
        order_status,
        OrderStatus::Completed | OrderStatus::Cancelled
    ) {
        return Err(DomainError::OrderClosedForBatches { order_status }.into());
    }
    let place = order
        .workstation_place(request.workstation_id)
        .await?
        .ok_or(DomainError::UnknownWorkstation)?;
    if place.organization_id != order.order().organization_id {
        return Err(DomainError::WorkstationOrganizationMismatch.into());
    }
    // Re-checked under the workstation's lock when the scope settles.
    place.require_current()?;
    let mut scope = order.lock_batches(BatchSelection::default()).await?;
    scope.check_group_references(&request.groups).await?;
    let task_count = scope.order().task_count;
    let target = scope.order().target_count;
    let remaining = target - task_count;
    if total > remaining {
        return Err(DomainError::OrderQuotaExceeded {
            target_count: target,
            task_count,
            remaining,
            requested: total,
        }
        .into());
    }

    let row = scope
        .insert_batch(NewBatch {
            workstation_id: request.workstation_id,
            name: request.name,
            notes: request.notes,
            metadata: request.metadata,
        })
        .await?;
    let tasks = scope.insert_pending_tasks(row.id, &request.groups).await?;
    let order = scope.order().clone();
    let mut settled = scope.settle_workstations().await?;
    let response = CreateBatchResponse {
        batch: BatchSummary {
            id: row.id.to_string(),
            batch_id: row.batch_id,
            order_id: order.id.to_string(),
            workstation_id: request.workstation_id.to_string(),
            organization_id: order.organization_id.to_string(),
            name: row.name,
            notes: row.notes,
            metadata: row.metadata,
            status: BatchStatus::Pending,
            task_count: total,
            completed_count: 0,
            created_at: row.created_at,
        },
        tasks,
    };
    let body = serde_json::to_string(&response)
        .map_err(|e| StoreError::Invariant(format!("create-batch answer: {e}")))?;
    if let Some(key) = idempotency_key {
        idempotency::store_response(settled.conn(), &owner, key, 201, &body).await?;
    }
    settled.commit().await?;
    tracing::info!(batch_id = row.id, "batch created");
    Ok(StoredResponse {
        status: 201,
        body,
        replayed: false,
        outbox_ids: Vec::new(),
    })
}

/// The 200 body of `POST /api/v1/orders/{id}/finalize`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FinalizeOrderResponse {
    pub order: OrderProgressView,
    pub finalized: bool,
    pub cancelled_task_count: i64,
    /// Public ids (`batch_…`) of the batches this call completed, ascending by database id;
    /// `GET /api/v1/batches?batch_id=…` finds each.
    pub completed_batch_ids: Vec<String>,
    pub notifications_enqueued: i64,
    /// Outbox rows written, for the publisher to send right after commit.
    #[serde(skip)]
    pub outbox_ids: Vec<i64>,
}

/// Completes an order on an admin's decision and finalizes it (SPEC §5.4) with the same code
/// the complete-tasks path uses. An already completed order answers `finalized: false` and
/// changes nothing.
///
/// # Errors
/// [`DomainError::OrderNotFound`], [`DomainError::OrderCancelled`].
#[tracing::instrument(skip_all, fields(order_id))]
pub async fn finalize_order(
    db: &Database,
    order_id: i64,
) -> Result<FinalizeOrderResponse, StoreError> {
    let work = UnitOfWork::begin(db).await?;
    let order = work
        .lock_order(order_id)
        .await?
        .ok_or(DomainError::OrderNotFound)?;
    if order.order().status == OrderStatus::Cancelled {
        return Err(DomainError::OrderCancelled {
            order_status: OrderStatus::Cancelled,
        }
        .into());
    }
    let mut scope = order
        .lock_batches(BatchSelection {
            ids: vec![],
            all_open: true,
        })
        .await?;
    let decision = scope.complete_order_by_decision().await?;
    let finalization = match decision.completion {
        Some(completion) => Some(scope.finalize_order(completion).await?),
        None => None,
    };
    let order = scope.order().clone();
    scope.settle_workstations().await?.commit().await?;
    let finalized = finalization.is_some();
    let finalization = finalization.unwrap_or_default();
    if finalized {
        crate::telemetry::order_finalized(finalization.outbox_ids.len());
    }
    tracing::info!(finalized, "order finalize requested");
    Ok(FinalizeOrderResponse {
        order: OrderProgressView {
            id: order.id.to_string(),
            status: order.status,
            completed_count: decision.completed_count,
            target_count: order.target_count,
        },
        finalized,
        cancelled_task_count: finalization.cancelled_task_count,
        completed_batch_ids: finalization.completed_batch_ids,
        notifications_enqueued: finalization.notifications_enqueued,
        outbox_ids: finalization.outbox_ids,
    })
}
