//! The admin console's batch lists (SPEC §5.15): batches by filter, and one batch's tasks.
//! Two statements each in one snapshot (a page and its total), planned per call.

use chrono::{DateTime, Utc};
use keystone_domain::batches::{BatchFilter, BatchTaskFilter};
use keystone_domain::listing::Page;
use keystone_domain::{BatchStatus, CollectorSession, DomainError, TaskStatus, UnknownStatus};
use serde::Serialize;

use crate::dispatch::read_batch_summary;
use crate::{Database, StoreError};

/// A batch as the list shows it: its summary, where it runs, and its task figures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchListItem {
    pub id: String,
    pub batch_id: String,
    pub order_id: String,
    pub order_name: String,
    pub workstation_id: String,
    pub workstation_name: String,
    pub device_id: Option<String>,
    pub collector_operator_id: Option<String>,
    pub organization_id: String,
    pub name: String,
    pub notes: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub status: BatchStatus,
    pub task_count: i64,
    pub completed_count: i64,
    pub failed_count: i64,
    pub cancelled_count: i64,
    pub pending_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct BatchListRow {
    id: i64,
    batch_id: String,
    order_id: i64,
    order_name: String,
    workstation_id: i64,
    workstation_name: String,
    device_id: Option<String>,
    collector_operator_id: Option<String>,
    organization_id: i64,
    name: String,
    notes: Option<String>,
    metadata: Option<serde_json::Value>,
    status: String,
    task_count: i64,
    completed_count: i64,
    failed_count: i64,
    cancelled_count: i64,
    pending_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn status<T: std::str::FromStr<Err = UnknownStatus>>(text: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|e: UnknownStatus| StoreError::Invariant(e.to_string()))
}

/// The batch filters (`$1`–`$7`). The device and collector filters resolve to workstations
/// first (by their unique indexes), so every filter is an index lookup on batches.
macro_rules! batch_filters {
    () => {
        "b.deleted_at IS NULL \
         AND ($1::bigint IS NULL OR b.order_id = $1) \
         AND ($2::bigint IS NULL OR b.workstation_id = $2) \
         AND ($3::bigint IS NULL OR b.organization_id = $3) \
         AND (cardinality($4::text[]) = 0 OR b.status = ANY($4)) \
         AND ($5::text IS NULL OR b.batch_id = $5) \
         AND ($6::text IS NULL OR b.workstation_id = ANY(ARRAY( \
                 SELECT ws.id FROM workstations ws JOIN robots rb ON rb.id = ws.robot_id \
                 WHERE rb.device_id = $6 AND rb.deleted_at IS NULL AND ws.deleted_at IS NULL))) \
         AND ($7::text IS NULL OR b.workstation_id = ANY(ARRAY( \
                 SELECT ws.id FROM workstations ws \
                 JOIN data_collectors dc ON dc.id = ws.data_collector_id \
                 WHERE dc.operator_id = $7 AND dc.deleted_at IS NULL \
                   AND ws.deleted_at IS NULL))) "
    };
}

/// A page of batches: the filters, then `$8` limit and `$9` offset.
const LIST_BATCHES: &str = concat!(
    "SELECT b.id, b.batch_id, b.order_id, o.name AS order_name, b.workstation_id, \
            w.name AS workstation_name, r.device_id, dc.operator_id AS collector_operator_id, \
            b.organization_id, b.name, b.notes, b.metadata, b.status, b.task_count, \
            b.completed_count, b.failed_count, b.cancelled_count, b.pending_count, \
            b.created_at, b.updated_at \
     FROM batches b \
     JOIN orders o ON o.id = b.order_id \
     JOIN workstations w ON w.id = b.workstation_id \
     LEFT JOIN robots r ON r.id = w.robot_id \
     LEFT JOIN data_collectors dc ON dc.id = w.data_collector_id \
     WHERE ",
    batch_filters!(),
    "ORDER BY b.created_at DESC, b.id DESC LIMIT $8 OFFSET $9"
);

/// How many batches the filters match.
const COUNT_BATCHES: &str = concat!("SELECT count(*) FROM batches b WHERE ", batch_filters!());

/// How many batches the organization (`$1`) and status (`$2`) filters match, from the batch
/// status tally: the folded rows and the moves since the last fold.
const TALLY_BATCHES: &str = "SELECT COALESCE(sum(t.delta), 0)::bigint FROM batch_status_tally t \
     WHERE (cardinality($2::text[]) = 0 OR t.status = ANY($2)) \
       AND ($1::bigint IS NULL OR t.organization_id = $1)";

/// A page of one batch's tasks: `$1` the batch, `$2`–`$4` the filters, `$5` limit, `$6` offset.
const LIST_BATCH_TASKS: &str = "SELECT t.id, t.task_id, t.sop_id, t.subscene_id, t.scene_name, \
            t.subscene_name, t.status, t.assigned_at, t.started_at, t.completed_at, t.episode_id \
     FROM tasks t \
     WHERE t.batch_id = $1 AND t.deleted_at IS NULL \
       AND (cardinality($2::text[]) = 0 OR t.status = ANY($2)) \
       AND ($3::bigint IS NULL OR t.sop_id = $3) \
       AND ($4::bigint IS NULL OR t.subscene_id = $4) \
     ORDER BY t.created_at, t.id LIMIT $5 OFFSET $6";

/// How many of one batch's tasks the filters match, from its group counters.
const COUNT_BATCH_TASKS: &str = "SELECT COALESCE(sum(c.task_count), 0)::bigint \
     FROM task_group_counts c \
     WHERE c.batch_id = $1 \
       AND (cardinality($2::text[]) = 0 OR c.status = ANY($2)) \
       AND ($3::bigint IS NULL OR c.sop_id = $3) \
       AND ($4::bigint IS NULL OR c.subscene_id = $4)";

/// Every list statement by name, for the tests that check each filter's plan on a large
/// dataset.
pub const PLANNED_STATEMENTS: [(&str, &str); 5] = [
    ("list_batches", LIST_BATCHES),
    ("count_batches", COUNT_BATCHES),
    ("tally_batches", TALLY_BATCHES),
    ("list_batch_tasks", LIST_BATCH_TASKS),
    ("count_batch_tasks", COUNT_BATCH_TASKS),
];

/// Live batches, newest first (then id), with the total the filters match.
///
/// # Errors
/// Database failures.
pub async fn list_batches(
    db: &Database,
    filter: &BatchFilter,
) -> Result<Page<BatchListItem>, StoreError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let mut tx = db.begin_read_only_snapshot().await?;
    let rows: Vec<BatchListRow> = sqlx::query_as(LIST_BATCHES)
        .bind(filter.order_id)
        .bind(filter.workstation_id)
        .bind(filter.organization_id)
        .bind(&statuses)
        .bind(filter.batch_id.as_deref())
        .bind(filter.device_id.as_deref())
        .bind(filter.collector_operator_id.as_deref())
        .bind(filter.page.limit)
        .bind(filter.page.offset)
        .persistent(false)
        .fetch_all(&mut *tx)
        .await?;
    // Narrow filters (an order, a workstation, a device, a collector, one batch) match few
    // batches and are counted; the broad ones are summed from the tally.
    let total: i64 = if filter.is_tallied() {
        sqlx::query_scalar(TALLY_BATCHES)
            .bind(filter.organization_id)
            .bind(&statuses)
            .persistent(false)
            .fetch_one(&mut *tx)
            .await?
    } else {
        sqlx::query_scalar(COUNT_BATCHES)
            .bind(filter.order_id)
            .bind(filter.workstation_id)
            .bind(filter.organization_id)
            .bind(&statuses)
            .bind(filter.batch_id.as_deref())
            .bind(filter.device_id.as_deref())
            .bind(filter.collector_operator_id.as_deref())
            .persistent(false)
            .fetch_one(&mut *tx)
            .await?
    };
    tx.commit().await?;
    let items = rows
        .into_iter()
        .map(|row| {
            Ok(BatchListItem {
                status: status(&row.status)?,
                id: row.id.to_string(),
                batch_id: row.batch_id,
                order_id: row.order_id.to_string(),
                order_name: row.order_name,
                workstation_id: row.workstation_id.to_string(),
                workstation_name: row.workstation_name,
                device_id: row.device_id,
                collector_operator_id: row.collector_operator_id,
                organization_id: row.organization_id.to_string(),
                name: row.name,
                notes: row.notes,
                metadata: row.metadata,
                task_count: row.task_count,
                completed_count: row.completed_count,
                failed_count: row.failed_count,
                cancelled_count: row.cancelled_count,
                pending_count: row.pending_count,
                created_at: row.created_at,
                updated_at: row.updated_at,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Page::new(items, total, filter.page))
}

/// A task of a batch.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchTaskItem {
    pub id: String,
    pub task_id: String,
    pub sop_id: String,
    pub subscene_id: String,
    pub scene_name: String,
    pub subscene_name: String,
    pub status: TaskStatus,
    pub assigned_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub episode_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct BatchTaskRow {
    id: i64,
    task_id: String,
    sop_id: i64,
    subscene_id: i64,
    scene_name: String,
    subscene_name: String,
    status: String,
    assigned_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    episode_id: Option<i64>,
}

/// A batch's live tasks in creation order (then id), with the total the filters match, read
/// from the batch's group counters rather than by counting tasks. A collector sees only the
/// batches of their own workstation. Three statements in one snapshot, whatever the sizes.
///
/// # Errors
/// [`DomainError::BatchNotFound`], [`DomainError::BatchNotOnWorkstation`], a collector's
/// session errors; database failures.
pub async fn list_batch_tasks(
    db: &Database,
    batch_id: i64,
    collector: Option<&CollectorSession>,
    filter: &BatchTaskFilter,
) -> Result<Page<BatchTaskItem>, StoreError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let mut tx = db.begin_read_only_snapshot().await?;
    let Some((_, seated)) = read_batch_summary(&mut tx, batch_id, collector).await? else {
        return Err(DomainError::BatchNotFound.into());
    };
    if collector.is_some_and(|c| seated != Some(c.collector_id)) {
        return Err(DomainError::BatchNotOnWorkstation.into());
    }
    let rows: Vec<BatchTaskRow> = sqlx::query_as(LIST_BATCH_TASKS)
        .bind(batch_id)
        .bind(&statuses)
        .bind(filter.sop_id)
        .bind(filter.subscene_id)
        .bind(filter.page.limit)
        .bind(filter.page.offset)
        .persistent(false)
        .fetch_all(&mut *tx)
        .await?;
    let total: i64 = sqlx::query_scalar(COUNT_BATCH_TASKS)
        .bind(batch_id)
        .bind(&statuses)
        .bind(filter.sop_id)
        .bind(filter.subscene_id)
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let items = rows
        .into_iter()
        .map(|row| {
            Ok(BatchTaskItem {
                status: status(&row.status)?,
                id: row.id.to_string(),
                task_id: row.task_id,
                sop_id: row.sop_id.to_string(),
                subscene_id: row.subscene_id.to_string(),
                scene_name: row.scene_name,
                subscene_name: row.subscene_name,
                assigned_at: row.assigned_at,
                started_at: row.started_at,
                completed_at: row.completed_at,
                episode_id: row.episode_id.map(|id| id.to_string()),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Page::new(items, total, filter.page))
}

/// The most delta rows one fold takes: a fold's work stays bounded, the next one goes on.
pub const TALLY_FOLD_BATCH: i64 = 10_000;

/// Folds up to [`TALLY_FOLD_BATCH`] of the batch status tally's rows, oldest first, into one
/// row per organization and status, in one statement: a total reads the same sum before and
/// after. Folds running at once each delete the rows they fold, so a row is folded once.
/// Answers how many rows were folded.
///
/// # Errors
/// Database failures.
pub async fn fold_batch_tally(db: &Database) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let folded: i64 = sqlx::query_scalar(
        "WITH taken AS ( \
             DELETE FROM batch_status_tally WHERE id IN ( \
                 SELECT id FROM batch_status_tally ORDER BY id LIMIT $1) \
             RETURNING organization_id, status, delta), \
         kept AS ( \
             INSERT INTO batch_status_tally (organization_id, status, delta) \
             SELECT organization_id, status, sum(delta) FROM taken \
             GROUP BY organization_id, status HAVING sum(delta) <> 0 RETURNING 1) \
         SELECT (SELECT count(*) FROM taken) - (SELECT count(*) FROM kept)",
    )
    .bind(TALLY_FOLD_BATCH)
    .persistent(crate::database::named_statements())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(u64::try_from(folded).unwrap_or_default())
}
