//! Order finalization (SPEC §5.4 steps 1–4), shared by every path that completes an order.

use keystone_domain::BatchStatus;
use serde::Serialize;

use crate::StoreError;
use crate::database::named_statements;
use crate::locking::{BatchScope, OrderCompletion};

/// What finalizing an order changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Finalization {
    pub cancelled_task_count: i64,
    /// Public ids of the batches finalization completed, ascending by database id.
    pub completed_batch_ids: Vec<String>,
    pub notifications_enqueued: i64,
    /// Outbox rows written, for the publisher to send right after commit.
    #[serde(skip)]
    pub outbox_ids: Vec<i64>,
}

/// Why recorder commands are sent (the message's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotificationReason {
    OrderCompleted,
    BatchCancelled,
    BatchRecalled,
    OrderCancelled,
}

impl NotificationReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::OrderCompleted => "order_completed",
            Self::BatchCancelled => "batch_cancelled",
            Self::BatchRecalled => "batch_recalled",
            Self::OrderCancelled => "order_cancelled",
        }
    }
}

impl BatchScope {
    /// Cancels the runnable tasks (pending, ready, in progress) of the order's open batches —
    /// only of `batch_id` when given — and writes one recorder notification per cancelled
    /// `ready` (`clear`) or `in_progress` (`cancel`) task on an Axon robot with a device id,
    /// with `reason`. One statement whatever the number of tasks; the outbox insert is
    /// `ON CONFLICT DO NOTHING` on the deterministic notification key.
    ///
    /// # Locks
    /// The task rows, after the batch locks the caller holds.
    ///
    /// # Errors
    /// Database failures.
    pub(crate) async fn cancel_runnable_tasks(
        &mut self,
        batch_id: Option<i64>,
        reason: NotificationReason,
    ) -> Result<(i64, Vec<i64>), StoreError> {
        Ok(sqlx::query_as(
            "WITH victims AS ( \
                 SELECT r.id, r.status AS previous_status \
                 FROM batches b CROSS JOIN LATERAL ( \
                     SELECT t.id, t.status FROM tasks t \
                     WHERE t.batch_id = b.id AND t.deleted_at IS NULL \
                       AND t.status IN ('pending', 'ready', 'in_progress') \
                     ORDER BY t.id FOR UPDATE) r \
                 WHERE b.order_id = $1 AND b.deleted_at IS NULL \
                   AND ($3::bigint IS NULL OR b.id = $3) \
                   AND b.status IN ('pending', 'active')), \
             changed AS ( \
                 UPDATE tasks t SET status = 'cancelled' \
                 WHERE t.id = ANY (ARRAY (SELECT id FROM victims)) \
                 RETURNING t.id, t.task_id, t.batch_id, t.workstation_id), \
             cancelled AS ( \
                 SELECT c.*, v.previous_status FROM changed c JOIN victims v ON v.id = c.id), \
             notices AS ( \
                 INSERT INTO recorder_outbox \
                     (notification_id, action, device_id, task_id, batch_id, order_id, \
                      trace_context, reason) \
                 SELECT 'order:' || $1::bigint || ':task:' || c.task_id || ':' || a.action, \
                        a.action, r.device_id, c.task_id, b.batch_id, $1, $2, $4 \
                 FROM cancelled c \
                 JOIN batches b ON b.id = c.batch_id \
                 JOIN workstations w ON w.id = COALESCE(c.workstation_id, b.workstation_id) \
                      AND w.deleted_at IS NULL \
                 JOIN robots r ON r.id = w.robot_id AND r.deleted_at IS NULL \
                 JOIN robot_types rt ON rt.id = r.robot_type_id AND rt.deleted_at IS NULL \
                 CROSS JOIN LATERAL (SELECT CASE c.previous_status WHEN 'ready' THEN 'clear' \
                                            ELSE 'cancel' END AS action) a \
                 WHERE c.previous_status IN ('ready', 'in_progress') \
                   AND r.device_id IS NOT NULL AND r.device_id <> '' \
                   AND keystone_requires_axon(rt.capabilities) \
                 ORDER BY c.id \
                 ON CONFLICT (notification_id) DO NOTHING \
                 RETURNING id) \
             SELECT (SELECT count(*) FROM cancelled), \
                    (SELECT COALESCE(array_agg(id ORDER BY id), '{}') FROM notices)",
        )
        .bind(self.order.id)
        .bind(crate::trace_context::current())
        .bind(batch_id)
        .bind(reason.as_str())
        .persistent(named_statements())
        .fetch_one(&mut *self.tx)
        .await?)
    }

    /// Finalizes the order this transaction just completed: cancels every runnable task of
    /// its open batches, completes those batches, queues their workstations for
    /// re-derivation, and writes one recorder notification per cancelled `ready` (`clear`) or
    /// `in_progress` (`cancel`) task on an Axon robot with a device id.
    ///
    /// Statement count is fixed (two), whatever the number of tasks and batches. The outbox
    /// insert is `ON CONFLICT DO NOTHING` on the deterministic notification key, so a
    /// notification can never be written twice.
    ///
    /// # Locks
    /// The runnable task rows, after the batch locks. The scope must have been opened with
    /// `BatchSelection::all_open`, so every batch changed here is already locked.
    ///
    /// # Errors
    /// Database failures; an invariant error when the scope does not cover every open batch.
    pub async fn finalize_order(
        &mut self,
        _completion: OrderCompletion,
    ) -> Result<Finalization, StoreError> {
        if !self.covers_all_open {
            return Err(StoreError::Invariant(
                "finalization needs every open batch of the order locked".to_owned(),
            ));
        }
        let order_id = self.order.id;
        let (cancelled_task_count, outbox_ids) = self
            .cancel_runnable_tasks(None, NotificationReason::OrderCompleted)
            .await?;

        let completed: Vec<(i64, String, i64)> = sqlx::query_as(
            "UPDATE batches SET status = 'completed', \
                 started_at = COALESCE(started_at, now()), ended_at = COALESCE(ended_at, now()) \
             WHERE order_id = $1 AND deleted_at IS NULL AND status IN ('pending', 'active') \
             RETURNING id, batch_id, workstation_id",
        )
        .bind(order_id)
        .persistent(named_statements())
        .fetch_all(&mut *self.tx)
        .await?;

        let mut completed_batches = Vec::with_capacity(completed.len());
        for (id, batch_id, workstation_id) in completed {
            if self.batch(id).is_none() {
                return Err(StoreError::Invariant(format!(
                    "finalization reached batch {id}, which was not locked"
                )));
            }
            self.record_batch_status(id, BatchStatus::Completed, workstation_id);
            completed_batches.push((id, batch_id));
        }
        completed_batches.sort_unstable_by_key(|(id, _)| *id);

        let notifications_enqueued = i64::try_from(outbox_ids.len())
            .map_err(|_| StoreError::Invariant("outbox row count overflow".to_owned()))?;
        tracing::info!(
            order_id,
            cancelled_task_count,
            completed_batches = completed_batches.len(),
            notifications_enqueued,
            "order finalized"
        );
        Ok(Finalization {
            cancelled_task_count,
            completed_batch_ids: completed_batches
                .into_iter()
                .map(|(_, public)| public)
                .collect(),
            notifications_enqueued,
            outbox_ids,
        })
    }
}
