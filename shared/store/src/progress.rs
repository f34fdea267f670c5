//! Progress views (SPEC §5.13): an order's figures and batch counts, and a batch's summary with
//! per-status and per-group counts. Read-only, one snapshot, a fixed number of statements.

use chrono::{DateTime, Utc};
use keystone_domain::{
    BatchStatus, CollectorSession, DomainError, OrderPriority, OrderStatus, TaskStatus,
};
use serde::Serialize;
use sqlx::PgConnection;

use crate::database::named_statements;
use crate::dispatch::{BatchSummary, read_batch_summary};
use crate::{Database, StoreError};

/// Live tasks per status, every status present (zero when none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TaskStatusCounts {
    pub pending: i64,
    pub ready: i64,
    pub in_progress: i64,
    pub uploading: i64,
    pub completed: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl TaskStatusCounts {
    fn add(&mut self, status: TaskStatus, count: i64) {
        let slot = match status {
            TaskStatus::Pending => &mut self.pending,
            TaskStatus::Ready => &mut self.ready,
            TaskStatus::InProgress => &mut self.in_progress,
            TaskStatus::Uploading => &mut self.uploading,
            TaskStatus::Completed => &mut self.completed,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Cancelled => &mut self.cancelled,
        };
        *slot += count;
    }
}

/// Live batches per status, every status present (zero when none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BatchStatusCounts {
    pub pending: i64,
    pub active: i64,
    pub completed: i64,
    pub cancelled: i64,
    pub recalled: i64,
}

impl BatchStatusCounts {
    fn add(&mut self, status: BatchStatus, count: i64) {
        let slot = match status {
            BatchStatus::Pending => &mut self.pending,
            BatchStatus::Active => &mut self.active,
            BatchStatus::Completed => &mut self.completed,
            BatchStatus::Cancelled => &mut self.cancelled,
            BatchStatus::Recalled => &mut self.recalled,
        };
        *slot += count;
    }
}

/// The order view: `GET /api/v1/orders/{id}`, the order list's items, and the
/// answer of creating or controlling an order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderProgress {
    pub id: String,
    pub name: String,
    pub status: OrderStatus,
    pub priority: OrderPriority,
    pub scene_id: Option<String>,
    pub scene_name: Option<String>,
    pub organization_id: String,
    pub organization_name: String,
    pub target_count: i64,
    /// Live tasks.
    pub task_count: i64,
    pub completed_count: i64,
    pub failed_count: i64,
    pub cancelled_count: i64,
    /// Tasks new batches may still take: the target less the live tasks, and 0 for a completed
    /// or cancelled order (nothing can be assigned to it).
    pub remaining_assignable: i64,
    /// Live batches per status, every status present.
    pub batch_counts: BatchStatusCounts,
    pub deadline: Option<DateTime<Utc>>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrderRow {
    id: i64,
    name: String,
    status: String,
    priority: String,
    scene_id: Option<i64>,
    scene_name: Option<String>,
    organization_id: i64,
    organization_name: String,
    target_count: i32,
    task_count: i64,
    completed_count: i64,
    failed_count: i64,
    cancelled_count: i64,
    batch_counts: serde_json::Value,
    deadline: Option<DateTime<Utc>>,
    metadata: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The order view's columns over `orders o` (or any row source aliased `o` with the orders'
/// columns, `$from`), its scene and organization; the batch figures are one aggregate over the
/// order's live batches (by the batches' order index), so the cost of a view follows its
/// batches, never its tasks.
macro_rules! order_view_from {
    ($from:expr, $($rest:tt)*) => {
        concat!(
            "SELECT o.id, o.name, o.status, o.priority, o.scene_id, sc.name AS scene_name, \
                    o.organization_id, org.name AS organization_name, o.target_count, \
                    o.task_count, o.completed_count, b.failed_count, b.cancelled_count, \
                    b.batch_counts, o.deadline, o.metadata, o.created_at, o.updated_at \
             FROM ",
            $from,
            " JOIN organizations org ON org.id = o.organization_id \
             LEFT JOIN scenes sc ON sc.id = o.scene_id \
             CROSS JOIN LATERAL ( \
                 SELECT COALESCE(sum(x.failed), 0)::bigint AS failed_count, \
                        COALESCE(sum(x.cancelled), 0)::bigint AS cancelled_count, \
                        COALESCE(jsonb_object_agg(x.status, x.n) \
                                 FILTER (WHERE x.status IS NOT NULL), '{}'::jsonb) AS batch_counts \
                 FROM (SELECT bt.status, count(*) AS n, sum(bt.failed_count) AS failed, \
                              sum(bt.cancelled_count) AS cancelled \
                       FROM batches bt WHERE bt.order_id = o.id AND bt.deleted_at IS NULL \
                       GROUP BY bt.status) x) b ",
            $($rest)*
        )
    };
}
pub(crate) use order_view_from;

/// [`order_view_from!`] over the orders table.
macro_rules! order_view_select {
    ($($rest:tt)*) => {
        $crate::progress::order_view_from!("orders o", $($rest)*)
    };
}
pub(crate) use order_view_select;

impl TryFrom<OrderRow> for OrderProgress {
    type Error = StoreError;

    fn try_from(row: OrderRow) -> Result<Self, StoreError> {
        let unknown = |e: keystone_domain::UnknownStatus| StoreError::Invariant(e.to_string());
        let status: OrderStatus = row.status.parse().map_err(unknown)?;
        let priority: OrderPriority = row.priority.parse().map_err(unknown)?;
        let mut batch_counts = BatchStatusCounts::default();
        if let serde_json::Value::Object(counts) = row.batch_counts {
            for (status, count) in counts {
                batch_counts.add(
                    status.parse().map_err(unknown)?,
                    count.as_i64().unwrap_or(0),
                );
            }
        }
        let target_count = i64::from(row.target_count);
        let remaining_assignable = match status {
            OrderStatus::Completed | OrderStatus::Cancelled => 0,
            _ => (target_count - row.task_count).max(0),
        };
        Ok(Self {
            id: row.id.to_string(),
            name: row.name,
            status,
            priority,
            scene_id: row.scene_id.map(|id| id.to_string()),
            scene_name: row.scene_name,
            organization_id: row.organization_id.to_string(),
            organization_name: row.organization_name,
            target_count,
            task_count: row.task_count,
            completed_count: row.completed_count,
            failed_count: row.failed_count,
            cancelled_count: row.cancelled_count,
            remaining_assignable,
            batch_counts,
            deadline: row.deadline,
            metadata: row.metadata,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// An order's view.
///
/// # Errors
/// [`DomainError::OrderNotFound`]; database failures.
pub async fn order_progress(db: &Database, order_id: i64) -> Result<OrderProgress, StoreError> {
    let mut tx = db.begin_read_only_snapshot().await?;
    let progress = read_order_progress(&mut tx, order_id).await?;
    tx.commit().await?;
    progress.ok_or_else(|| DomainError::OrderNotFound.into())
}

/// The order view, read on the caller's connection: a snapshot for the `GET`, or the
/// transaction that just changed the order for the order controls (SPEC §5.12).
///
/// # Errors
/// Database failures.
pub(crate) async fn read_order_progress(
    conn: &mut PgConnection,
    order_id: i64,
) -> Result<Option<OrderProgress>, StoreError> {
    let row: Option<OrderRow> = sqlx::query_as(order_view_select!(
        "WHERE o.id = $1 AND o.deleted_at IS NULL"
    ))
    .bind(order_id)
    .persistent(named_statements())
    .fetch_optional(conn)
    .await?;
    row.map(OrderProgress::try_from).transpose()
}

/// One task group of a batch, with its tasks by status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupProgress {
    pub sop_id: String,
    pub subscene_id: String,
    pub sop_slug: String,
    pub scene_name: String,
    pub subscene_name: String,
    pub task_count: i64,
    pub status_counts: TaskStatusCounts,
}

/// The 200 body of `GET /api/v1/batches/{id}`: the batch summary plus its tasks counted by
/// status, overall and per task group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchProgress {
    #[serde(flatten)]
    pub summary: BatchSummary,
    pub status_counts: TaskStatusCounts,
    pub task_groups: Vec<GroupProgress>,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    sop_id: i64,
    subscene_id: i64,
    sop_slug: String,
    scene_name: String,
    subscene_name: String,
    status: String,
    count: i64,
}

/// A live batch with its tasks counted by status and by group, for an admin or for the
/// collector seated at its workstation.
///
/// # Errors
/// For a collector, [`DomainError::CollectorNotFound`] and [`DomainError::SessionEnded`]
/// (SPEC §4) first, then [`DomainError::BatchNotOnWorkstation`] for another workstation's
/// batch; [`DomainError::BatchNotFound`]; database failures.
pub async fn batch_progress(
    db: &Database,
    batch_id: i64,
    collector: Option<&CollectorSession>,
) -> Result<BatchProgress, StoreError> {
    let mut tx = db.begin_read_only_snapshot().await?;
    let Some((summary, seated)) = read_batch_summary(&mut tx, batch_id, collector).await? else {
        return Err(DomainError::BatchNotFound.into());
    };
    if collector.is_some_and(|c| seated != Some(c.collector_id)) {
        return Err(DomainError::BatchNotOnWorkstation.into());
    }
    // Counts from the group counters; names from any live task of the group (its
    // denormalized copy, as every task of the group carries it).
    let groups: Vec<GroupRow> = sqlx::query_as(
        "SELECT c.sop_id, c.subscene_id, COALESCE(s.slug, '') AS sop_slug, \
                COALESCE(n.scene_name, '') AS scene_name, \
                COALESCE(n.subscene_name, '') AS subscene_name, c.status, c.task_count AS count \
         FROM task_group_counts c \
         LEFT JOIN sops s ON s.id = c.sop_id AND s.deleted_at IS NULL \
         LEFT JOIN LATERAL ( \
             SELECT t.scene_name, t.subscene_name FROM tasks t \
             WHERE t.batch_id = c.batch_id AND t.sop_id = c.sop_id \
               AND t.subscene_id = c.subscene_id AND t.deleted_at IS NULL LIMIT 1) n ON true \
         WHERE c.batch_id = $1 AND c.task_count > 0 \
         ORDER BY c.sop_id, c.subscene_id, c.status",
    )
    .bind(batch_id)
    .persistent(named_statements())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;

    let mut task_groups: Vec<GroupProgress> = Vec::new();
    let mut status_counts = TaskStatusCounts::default();
    for row in &groups {
        let (sop_id, subscene_id) = (row.sop_id.to_string(), row.subscene_id.to_string());
        let index = match task_groups
            .iter()
            .position(|g| g.sop_id == sop_id && g.subscene_id == subscene_id)
        {
            Some(index) => index,
            None => {
                task_groups.push(GroupProgress {
                    sop_id,
                    subscene_id,
                    sop_slug: row.sop_slug.clone(),
                    scene_name: row.scene_name.clone(),
                    subscene_name: row.subscene_name.clone(),
                    task_count: 0,
                    status_counts: TaskStatusCounts::default(),
                });
                task_groups.len() - 1
            }
        };
        let status: TaskStatus = row.status.parse()?;
        let group = &mut task_groups[index];
        group.task_count += row.count;
        group.status_counts.add(status, row.count);
        status_counts.add(status, row.count);
    }
    let view = BatchProgress {
        summary,
        status_counts,
        task_groups,
    };
    Ok(view)
}
