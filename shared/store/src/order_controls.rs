//! Order controls (SPEC §5.12): pause, resume, cancel and re-target an order.
//!
//! Each is one transaction under the §6 lock order. Pause changes the order row alone; the
//! others lock every open batch of the order first, because resuming or re-targeting may
//! complete (and so finalize) the order and cancelling it cancels all of them.

use keystone_domain::orders::OrderDetailsEdit;
use keystone_domain::{DomainError, OrderControl, OrderStatus, OrderTargetRequest};
use serde::Serialize;

use crate::database::named_statements;
use crate::finalize::NotificationReason;
use crate::locking::{BatchScope, BatchSelection, OrderAdvance, OrderScope, UnitOfWork};
use crate::progress::{OrderProgress, read_order_progress};
use crate::{Database, StoreError};

/// An order control the admin asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderCommand {
    Pause,
    Resume,
    Cancel,
    Retarget(OrderTargetRequest),
}

impl OrderCommand {
    fn control(self) -> OrderControl {
        match self {
            Self::Pause => OrderControl::Pause,
            Self::Resume => OrderControl::Resume,
            Self::Cancel => OrderControl::Cancel,
            Self::Retarget(_) => OrderControl::Retarget,
        }
    }

    /// What the command does from `status`: act, answer unchanged, or refuse.
    fn gate(self, status: OrderStatus) -> Gate {
        use OrderStatus as S;
        match (self, status) {
            (Self::Pause, S::Created | S::InProgress)
            | (Self::Resume, S::Paused)
            | (Self::Cancel, S::Created | S::InProgress | S::Paused)
            | (Self::Retarget(_), S::Created | S::InProgress | S::Paused | S::Completed) => {
                Gate::Act
            }
            (Self::Pause, S::Paused)
            | (Self::Resume, S::Created | S::InProgress)
            | (Self::Cancel, S::Cancelled) => Gate::Unchanged,
            (Self::Pause | Self::Resume, S::Completed | S::Cancelled)
            | (Self::Cancel, S::Completed)
            | (Self::Retarget(_), S::Cancelled) => Gate::Refuse,
        }
    }
}

enum Gate {
    Act,
    Unchanged,
    Refuse,
}

/// The 200 body of every order control: the order as `GET /api/v1/orders/{id}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderControlResponse {
    #[serde(flatten)]
    pub order: OrderProgress,
    /// Whether this call changed the order.
    #[serde(skip)]
    pub changed: bool,
    /// Outbox rows written (finalization or cancellation), to publish right after commit.
    #[serde(skip)]
    pub outbox_ids: Vec<i64>,
}

/// What the changes of one control did besides the order row.
#[derive(Default)]
struct Effects {
    changed: bool,
    finalized: bool,
    cancelled_task_count: i64,
    outbox_ids: Vec<i64>,
}

/// Applies an order control (SPEC §5.12) in one transaction and answers the order as it is
/// afterwards. A call that changes nothing answers the order unchanged; a move the order's
/// status does not allow is refused with that status.
///
/// # Errors
/// [`DomainError::OrderNotFound`], [`DomainError::OrderControlNotAllowed`],
/// [`DomainError::TargetBelowCompleted`]; database failures.
#[tracing::instrument(skip_all, fields(order_id, control = %command.control()))]
pub async fn control_order(
    db: &Database,
    order_id: i64,
    command: OrderCommand,
) -> Result<OrderControlResponse, StoreError> {
    update_order(db, order_id, Some(command), &OrderDetailsEdit::default()).await
}

/// `PATCH /api/v1/orders/{id}`: the descriptive fields (name, priority, deadline, metadata)
/// and, when given, a new target, in one transaction under the order's lock. The details may
/// change in any status; the target follows the re-target rules.
///
/// # Errors
/// [`DomainError::OrderNameTaken`] for a name another live order of the organization has, and
/// [`control_order`]'s.
pub async fn update_order(
    db: &Database,
    order_id: i64,
    command: Option<OrderCommand>,
    details: &OrderDetailsEdit,
) -> Result<OrderControlResponse, StoreError> {
    let mut scope = UnitOfWork::begin(db)
        .await?
        .lock_order(order_id)
        .await?
        .ok_or(DomainError::OrderNotFound)?;
    let details_changed = if details.is_empty() {
        false
    } else {
        scope.edit_order_details(details).await?
    };
    let Some(command) = command else {
        let mut settled = scope.settle();
        let order = read_order_progress(settled.conn(), order_id)
            .await?
            .ok_or_else(|| StoreError::Invariant(format!("locked order {order_id} vanished")))?;
        settled.commit().await?;
        tracing::info!(changed = details_changed, "order details updated");
        return Ok(OrderControlResponse {
            order,
            changed: details_changed,
            outbox_ids: Vec::new(),
        });
    };
    let current_status = scope.order().status;
    let gate = command.gate(current_status);
    if let Gate::Refuse = gate {
        return Err(DomainError::OrderControlNotAllowed {
            control: command.control(),
            current_status,
        }
        .into());
    }

    let (settled, effects) = match (gate, command) {
        (Gate::Unchanged, _) => (scope.settle(), Effects::default()),
        (_, OrderCommand::Pause) => {
            let changed = scope.pause_order().await?;
            (
                scope.settle(),
                Effects {
                    changed,
                    ..Effects::default()
                },
            )
        }
        (_, command) => {
            let mut batches = scope
                .lock_batches(BatchSelection {
                    ids: Vec::new(),
                    all_open: true,
                })
                .await?;
            let effects = apply_with_batches(&mut batches, command).await?;
            (batches.settle_workstations().await?, effects)
        }
    };
    let mut settled = settled;
    let order = read_order_progress(settled.conn(), order_id)
        .await?
        .ok_or_else(|| StoreError::Invariant(format!("locked order {order_id} vanished")))?;
    settled.commit().await?;

    if effects.finalized {
        crate::telemetry::order_finalized(effects.outbox_ids.len());
    } else if !effects.outbox_ids.is_empty() {
        crate::telemetry::notifications_enqueued(effects.outbox_ids.len());
    }
    tracing::info!(
        changed = effects.changed,
        finalized = effects.finalized,
        cancelled_task_count = effects.cancelled_task_count,
        status = %order.status,
        "order control applied"
    );
    Ok(OrderControlResponse {
        order,
        changed: effects.changed || details_changed,
        outbox_ids: effects.outbox_ids,
    })
}

/// Resume, cancel and re-target, with every open batch of the order locked.
async fn apply_with_batches(
    scope: &mut BatchScope,
    command: OrderCommand,
) -> Result<Effects, StoreError> {
    let advance: Option<OrderAdvance> = match command {
        OrderCommand::Pause => {
            return Err(StoreError::Invariant("pause locks no batch".to_owned()));
        }
        OrderCommand::Cancel => {
            let (cancelled_task_count, outbox_ids) = scope
                .cancel_runnable_tasks(None, NotificationReason::OrderCancelled)
                .await?;
            scope.cancel_open_batches(None).await?;
            scope.cancel_order_row().await?;
            return Ok(Effects {
                changed: true,
                finalized: false,
                cancelled_task_count,
                outbox_ids,
            });
        }
        OrderCommand::Resume => Some(scope.resume_order().await?),
        OrderCommand::Retarget(request) => scope.retarget_order(request.target_count).await?,
    };
    let Some(advance) = advance else {
        return Ok(Effects::default());
    };
    let mut effects = Effects {
        changed: true,
        ..Effects::default()
    };
    if let Some(completion) = advance.completion {
        let finalization = scope.finalize_order(completion).await?;
        effects.finalized = true;
        effects.cancelled_task_count = finalization.cancelled_task_count;
        effects.outbox_ids = finalization.outbox_ids;
    }
    Ok(effects)
}

// SPEC §5.12 on the ladder: the order row's own moves, under its lock.

impl BatchScope {
    /// Resumes the locked paused order in one conditional UPDATE: to completed when its
    /// completed count has reached the target (the caller then finalizes it), else to
    /// in_progress when it has a completed task, else to created.
    ///
    /// # Errors
    /// Database failures.
    pub async fn resume_order(&mut self) -> Result<OrderAdvance, StoreError> {
        let (completed_count, moved_to): (i64, Option<String>) = sqlx::query_as(
            "WITH progress AS (SELECT completed_count AS completed FROM orders WHERE id = $1), \
             moved AS ( \
                 UPDATE orders o SET status = CASE WHEN p.completed >= o.target_count THEN 'completed' \
                                                   WHEN p.completed > 0 THEN 'in_progress' \
                                                   ELSE 'created' END \
                 FROM progress p WHERE o.id = $1 AND o.status = 'paused' \
                 RETURNING o.status) \
             SELECT p.completed, (SELECT status FROM moved) FROM progress p",
        )
        .bind(self.order.id)
        .persistent(named_statements())
        .fetch_one(&mut *self.tx)
        .await?;
        self.record_order_move(completed_count, moved_to.as_deref())
    }

    /// Sets the locked order's target in one conditional UPDATE, never below its completed
    /// count and never on a cancelled order. A running order (created or in progress) that has
    /// reached the new target completes (the caller then finalizes it); a completed order given
    /// a target above both its old target and its completed count runs again (in_progress, or
    /// created with no completed task); a paused order stays paused (resuming finalizes it).
    /// Answers `None` when the target was already `target_count`.
    ///
    /// # Errors
    /// [`DomainError::TargetBelowCompleted`]; database failures.
    pub async fn retarget_order(
        &mut self,
        target_count: i32,
    ) -> Result<Option<OrderAdvance>, StoreError> {
        let (completed_count, moved_to): (i64, Option<String>) = sqlx::query_as(
            "WITH progress AS (SELECT completed_count AS completed FROM orders WHERE id = $1), \
             moved AS ( \
                 UPDATE orders o SET target_count = $2, status = CASE \
                     WHEN o.status IN ('created', 'in_progress') AND p.completed >= $2 \
                         THEN 'completed' \
                     WHEN o.status = 'completed' AND $2 > o.target_count AND p.completed < $2 \
                         THEN CASE WHEN p.completed > 0 THEN 'in_progress' ELSE 'created' END \
                     ELSE o.status END \
                 FROM progress p \
                 WHERE o.id = $1 AND o.status <> 'cancelled' AND o.target_count <> $2 \
                   AND p.completed <= $2 \
                 RETURNING o.status) \
             SELECT p.completed, (SELECT status FROM moved) FROM progress p",
        )
        .bind(self.order.id)
        .bind(target_count)
        .persistent(named_statements())
        .fetch_one(&mut *self.tx)
        .await?;
        if completed_count > i64::from(target_count) {
            return Err(DomainError::TargetBelowCompleted {
                completed_count,
                requested: i64::from(target_count),
            }
            .into());
        }
        let Some(moved_to) = moved_to else {
            return Ok(None);
        };
        self.order.target_count = i64::from(target_count);
        self.record_order_move(completed_count, Some(&moved_to))
            .map(Some)
    }

    /// Moves the locked order to cancelled (from created, in_progress or paused) in one
    /// conditional UPDATE. The caller cancels its open batches first.
    ///
    /// # Errors
    /// Database failures; an invariant error when the order was not open under its lock.
    pub(crate) async fn cancel_order_row(&mut self) -> Result<(), StoreError> {
        let moved = sqlx::query(
            "UPDATE orders SET status = 'cancelled' \
             WHERE id = $1 AND status IN ('created', 'in_progress', 'paused')",
        )
        .bind(self.order.id)
        .persistent(named_statements())
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Err(StoreError::Invariant(format!(
                "order {} was not open under its lock",
                self.order.id
            )));
        }
        self.order.status = OrderStatus::Cancelled;
        Ok(())
    }
}

impl OrderScope {
    /// Sets the locked order's descriptive fields that `details` names; answers whether the
    /// row changed. The live-name index refuses a name another live order of the organization
    /// has.
    ///
    /// # Errors
    /// [`DomainError::OrderNameTaken`]; database failures.
    pub async fn edit_order_details(
        &mut self,
        details: &OrderDetailsEdit,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE orders SET name = COALESCE($2, name), priority = COALESCE($3, priority), \
                 deadline = CASE WHEN $4 THEN $5 ELSE deadline END, \
                 metadata = COALESCE($6, metadata) \
             WHERE id = $1 \
               AND (name, priority, deadline, metadata) IS DISTINCT FROM \
                   (COALESCE($2, name), COALESCE($3, priority), \
                    CASE WHEN $4 THEN $5 ELSE deadline END, COALESCE($6, metadata))",
        )
        .bind(self.order.id)
        .bind(details.name.as_deref())
        .bind(details.priority.map(|p| p.as_str()))
        .bind(details.deadline.is_some())
        .bind(details.deadline.flatten())
        .bind(details.metadata.as_ref().map(sqlx::types::Json))
        .persistent(named_statements())
        .execute(&mut *self.tx)
        .await;
        match updated {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("orders_live_name") => {
                Err(DomainError::OrderNameTaken.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Pauses the locked order (created or in progress → paused) with one conditional UPDATE;
    /// answers whether it moved.
    ///
    /// # Errors
    /// Database failures.
    pub async fn pause_order(&mut self) -> Result<bool, StoreError> {
        let moved = sqlx::query(
            "UPDATE orders SET status = 'paused' \
             WHERE id = $1 AND status IN ('created', 'in_progress')",
        )
        .bind(self.order.id)
        .persistent(named_statements())
        .execute(&mut *self.tx)
        .await?
        .rows_affected()
            == 1;
        if moved {
            self.order.status = OrderStatus::Paused;
        }
        Ok(moved)
    }
}
