//! Set-based task edits on a locked batch: one statement each, whatever the quantities.

use chrono::{DateTime, Utc};
use keystone_domain::ids::{PublicIdKind, new_public_ids};
use keystone_domain::{BatchStatus, DomainError, GroupQuantity, TaskGroupKey, TaskStatus};
use serde::Serialize;

use crate::StoreError;
use crate::database::named_statements;
use crate::locking::{BatchCounters, BatchScope, LockedBatch};

/// Live and locked task counts of one requested group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupFigures {
    pub group: TaskGroupKey,
    pub live: i64,
    /// Tasks that may not be removed: not pending, or already linked to an episode.
    pub locked: i64,
}

/// A task created by an edit, in the shape responses use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CreatedTaskView {
    pub id: String,
    pub task_id: String,
    pub sop_id: String,
    pub subscene_id: String,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
}

/// Fields of a new batch.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub workstation_id: i64,
    pub name: Option<String>,
    pub notes: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// The row of a freshly created batch.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CreatedBatchRow {
    pub id: i64,
    pub batch_id: String,
    pub name: String,
    pub notes: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

fn split(groups: &[GroupQuantity]) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    (
        groups.iter().map(|g| g.group.sop_id).collect(),
        groups.iter().map(|g| g.group.subscene_id).collect(),
        groups.iter().map(|g| g.quantity).collect(),
    )
}

impl BatchScope {
    /// Live and locked counts of each requested group of a locked batch, in request order.
    ///
    /// # Errors
    /// Database failures; an invariant error if the batch is not locked here.
    pub async fn group_figures(
        &mut self,
        batch_id: i64,
        groups: &[GroupQuantity],
    ) -> Result<Vec<GroupFigures>, StoreError> {
        self.require_locked(batch_id)?;
        let (sops, subscenes, _) = split(groups);
        // Live and non-pending tasks come from the group counters; pending tasks with an
        // episode (rare) from their partial index.
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT COALESCE(c.live, 0)::bigint, \
                    (COALESCE(c.not_pending, 0) + ( \
                        SELECT count(*) FROM tasks t \
                        WHERE t.batch_id = $1 AND t.sop_id = g.sop_id \
                          AND t.subscene_id = g.subscene_id AND t.deleted_at IS NULL \
                          AND t.status = 'pending' AND t.episode_id IS NOT NULL))::bigint \
             FROM unnest($2::bigint[], $3::bigint[]) WITH ORDINALITY AS g(sop_id, subscene_id, ord) \
             LEFT JOIN LATERAL ( \
                 SELECT sum(task_count) AS live, \
                        sum(task_count) FILTER (WHERE status <> 'pending') AS not_pending \
                 FROM task_group_counts \
                 WHERE batch_id = $1 AND sop_id = g.sop_id AND subscene_id = g.subscene_id) c \
                 ON true \
             ORDER BY g.ord",
        )
        .bind(batch_id)
        .bind(&sops)
        .bind(&subscenes)
        .persistent(named_statements())
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(groups
            .iter()
            .zip(rows)
            .map(|(g, (live, locked))| GroupFigures {
                group: g.group,
                live,
                locked,
            })
            .collect())
    }

    /// The first sop and subscene of `groups` (in request order) that does not exist live.
    ///
    /// # Errors
    /// [`DomainError::UnknownSop`] or [`DomainError::UnknownSubscene`].
    pub async fn check_group_references(
        &mut self,
        groups: &[GroupQuantity],
    ) -> Result<(), StoreError> {
        let (sops, subscenes, _) = split(groups);
        let (sop, subscene): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT x FROM unnest($1::bigint[]) WITH ORDINALITY AS u(x, ord) \
                     WHERE NOT EXISTS (SELECT 1 FROM sops s WHERE s.id = x AND s.deleted_at IS NULL) \
                     ORDER BY ord LIMIT 1), \
                    (SELECT x FROM unnest($2::bigint[]) WITH ORDINALITY AS u(x, ord) \
                     WHERE NOT EXISTS (SELECT 1 FROM subscenes s \
                                       WHERE s.id = x AND s.deleted_at IS NULL) \
                     ORDER BY ord LIMIT 1)",
        )
        .bind(&sops)
        .bind(&subscenes)
        .persistent(named_statements())
        .fetch_one(&mut *self.tx)
        .await?;
        if let Some(sop_id) = sop {
            return Err(DomainError::UnknownSop { sop_id }.into());
        }
        if let Some(subscene_id) = subscene {
            return Err(DomainError::UnknownSubscene { subscene_id }.into());
        }
        Ok(())
    }

    /// Creates a pending batch of the locked order; the new row is part of this scope.
    ///
    /// # Errors
    /// Database failures.
    pub async fn insert_batch(&mut self, batch: NewBatch) -> Result<CreatedBatchRow, StoreError> {
        let public_id = keystone_domain::ids::new_public_id(PublicIdKind::Batch, Utc::now());
        let row: CreatedBatchRow = sqlx::query_as(
            "INSERT INTO batches (batch_id, order_id, workstation_id, organization_id, name, notes, metadata) \
             VALUES ($1, $2, $3, $4, COALESCE($5, $1), $6, $7) \
             RETURNING id, batch_id, name, notes, metadata, created_at",
        )
        .bind(&public_id)
        .bind(self.order.id)
        .bind(batch.workstation_id)
        .bind(self.order.organization_id)
        .bind(batch.name)
        .bind(batch.notes)
        .bind(batch.metadata)
        .persistent(named_statements())
        .fetch_one(&mut *self.tx)
        .await?;
        self.batches.push(LockedBatch {
            id: row.id,
            batch_id: row.batch_id.clone(),
            workstation_id: batch.workstation_id,
            status: BatchStatus::Pending,
            // A new batch has no task yet; its inserts count themselves.
            figures: BatchCounters::default(),
        });
        // Settling locks the workstation and refuses a binding rebound meanwhile.
        self.touched_workstations.insert(batch.workstation_id);
        Ok(row)
    }

    /// Inserts `quantity` pending tasks per group into a locked batch, with fresh public ids,
    /// `assigned_at = now()` and the denormalized scene, subscene and workstation fields.
    ///
    /// # Errors
    /// Database failures; an invariant error if the batch is not locked here.
    pub async fn insert_pending_tasks(
        &mut self,
        batch_id: i64,
        groups: &[GroupQuantity],
    ) -> Result<Vec<CreatedTaskView>, StoreError> {
        self.require_locked(batch_id)?;
        let groups: Vec<GroupQuantity> =
            groups.iter().copied().filter(|g| g.quantity > 0).collect();
        let total: i64 = groups.iter().map(|g| g.quantity).sum();
        let count = usize::try_from(total)
            .map_err(|_| StoreError::Invariant(format!("bad task total {total}")))?;
        let task_ids = new_public_ids(PublicIdKind::Task, Utc::now(), count);
        let (sops, subscenes, quantities) = split(&groups);
        let rows: Vec<(i64, String, i64, i64, DateTime<Utc>)> = sqlx::query_as(
            "WITH plan AS ( \
                 SELECT g.sop_id, g.subscene_id, \
                        row_number() OVER (ORDER BY g.ord, n) AS rn \
                 FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) \
                      WITH ORDINALITY AS g(sop_id, subscene_id, how_many, ord) \
                 CROSS JOIN LATERAL generate_series(1, g.how_many) AS n), \
             ids AS (SELECT task_id, rn FROM unnest($5::text[]) WITH ORDINALITY AS i(task_id, rn)) \
             INSERT INTO tasks (task_id, batch_id, order_id, sop_id, subscene_id, scene_id, \
                                workstation_id, scene_name, subscene_name, organization_id, \
                                factory_id, initial_scene_layout, status, assigned_at) \
             SELECT ids.task_id, b.id, b.order_id, p.sop_id, p.subscene_id, sub.scene_id, \
                    b.workstation_id, COALESCE(sc.name, ''), sub.name, b.organization_id, \
                    w.factory_id, sub.initial_scene_layout, 'pending', now() \
             FROM plan p \
             JOIN ids ON ids.rn = p.rn \
             JOIN batches b ON b.id = $1 \
             JOIN subscenes sub ON sub.id = p.subscene_id \
             LEFT JOIN scenes sc ON sc.id = sub.scene_id \
             LEFT JOIN workstations w ON w.id = b.workstation_id \
             ORDER BY p.rn \
             RETURNING id, task_id, sop_id, subscene_id, created_at",
        )
        .bind(batch_id)
        .bind(&sops)
        .bind(&subscenes)
        .bind(&quantities)
        .bind(&task_ids)
        .persistent(named_statements())
        .fetch_all(&mut *self.tx)
        .await?;
        if rows.len() != count {
            return Err(StoreError::Invariant(format!(
                "inserted {} of {count} tasks",
                rows.len()
            )));
        }
        let mut rows = rows;
        rows.sort_unstable_by_key(|row| row.0);
        Ok(rows
            .into_iter()
            .map(
                |(id, task_id, sop_id, subscene_id, created_at)| CreatedTaskView {
                    id: id.to_string(),
                    task_id,
                    sop_id: sop_id.to_string(),
                    subscene_id: subscene_id.to_string(),
                    status: TaskStatus::Pending,
                    created_at,
                },
            )
            .collect())
    }

    /// Soft-deletes `quantity` removable tasks per group of a locked batch — pending, without
    /// an episode — newest first (`created_at DESC, id DESC`). Returns their public ids.
    ///
    /// # Locks
    /// The deleted task rows.
    ///
    /// # Errors
    /// Database failures; an invariant error if fewer tasks could be removed than asked
    /// (callers check the locked-task floor first).
    pub async fn soft_delete_newest_pending(
        &mut self,
        batch_id: i64,
        groups: &[GroupQuantity],
    ) -> Result<Vec<String>, StoreError> {
        self.require_locked(batch_id)?;
        let groups: Vec<GroupQuantity> =
            groups.iter().copied().filter(|g| g.quantity > 0).collect();
        let wanted: i64 = groups.iter().map(|g| g.quantity).sum();
        let (sops, subscenes, quantities) = split(&groups);
        let deleted: Vec<(String,)> = sqlx::query_as(
            "WITH wanted AS ( \
                 SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) \
                      AS w(sop_id, subscene_id, how_many)), \
             victims AS ( \
                 SELECT n.id FROM wanted w CROSS JOIN LATERAL ( \
                     SELECT t.id FROM tasks t \
                     WHERE t.batch_id = $1 AND t.sop_id = w.sop_id AND t.subscene_id = w.subscene_id \
                       AND t.deleted_at IS NULL AND t.status = 'pending' AND t.episode_id IS NULL \
                     ORDER BY t.created_at DESC, t.id DESC LIMIT w.how_many FOR UPDATE) n) \
             UPDATE tasks t SET deleted_at = now() WHERE t.id = ANY (ARRAY (SELECT id FROM victims)) \
             RETURNING t.task_id",
        )
        .bind(batch_id)
        .bind(&sops)
        .bind(&subscenes)
        .bind(&quantities)
        .persistent(named_statements())
        .fetch_all(&mut *self.tx)
        .await?;
        if i64::try_from(deleted.len()).ok() != Some(wanted) {
            return Err(StoreError::Invariant(format!(
                "removed {} of {wanted} tasks from batch {batch_id}",
                deleted.len()
            )));
        }
        Ok(deleted.into_iter().map(|(task_id,)| task_id).collect())
    }
}

// SPEC §5.2: an edited batch whose tasks are all done completes.

impl BatchScope {
    /// Completes a locked open batch whose tasks an admin edited (SPEC §5.2), once it has live
    /// tasks and none is unfinished (stamping `started_at` if empty and `ended_at`), in one
    /// conditional UPDATE over its counters; returns the new status when it moved. An edit
    /// never starts a batch, and a batch left with no live task at all is not completed.
    ///
    /// # Errors
    /// Database failures; an invariant error if the batch is not locked here.
    pub async fn complete_batch_if_done(
        &mut self,
        batch_id: i64,
    ) -> Result<Option<BatchStatus>, StoreError> {
        self.require_locked(batch_id)?;
        let moved: Option<(String, i64)> = sqlx::query_as(
            "UPDATE batches SET status = 'completed', \
                 started_at = COALESCE(started_at, now()), ended_at = COALESCE(ended_at, now()) \
             WHERE id = $1 AND status IN ('pending', 'active') AND task_count > 0 \
               AND task_count = completed_count + failed_count + cancelled_count \
             RETURNING status, workstation_id",
        )
        .bind(batch_id)
        .persistent(named_statements())
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some((status, workstation_id)) = moved else {
            return Ok(None);
        };
        let status: BatchStatus = status.parse()?;
        self.record_batch_status(batch_id, status, workstation_id);
        Ok(Some(status))
    }
}
