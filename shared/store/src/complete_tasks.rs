//! Complete task group (SPEC §5.1): a collector marks N pending tasks of a group done.

use chrono::{DateTime, Utc};
use keystone_domain::{
    BatchStatus, CollectorSession, CompleteTasksRequest, DomainError, IdempotencyKey, OrderStatus,
};
use serde::Serialize;

use crate::idempotency::{self, Claim, KeyOwner};
use crate::locking::{OpenBatches, UnitOfWork};
use crate::{Database, StoreError, StoredResponse};

/// A validated complete-tasks call.
#[derive(Debug, Clone)]
pub struct CompleteTaskGroup {
    pub session: CollectorSession,
    pub batch_id: i64,
    pub request: CompleteTasksRequest,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The 200 body of SPEC §5.1.
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
    pub status: &'static str,
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

    // The session must still stand before anything is recorded under its collector's id.
    let seat = crate::identity::admitted_seat(work.conn(), &session).await?;

    if let Some(key) = &idempotency_key {
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
    }

    let workstation_id = seat
        .workstation_id
        .ok_or(DomainError::WorkstationNotAssigned)?;

    // Every open batch is locked too when this request may complete the order, because
    // finalization changes all of them; otherwise the batch alone.
    let quantity = request.quantity;
    let (mut scope, batch) = work
        .lock_batch_through_order(
            batch_id,
            OpenBatches::IfCompleting(quantity),
            Some(workstation_id),
        )
        .await?;

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
                status: "completed",
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
