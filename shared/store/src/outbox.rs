//! Publishing state of the recorder outbox (SPEC §7). Rows are written by finalization; these
//! statements lease them to a publisher, and record the outcome.
//!
//! Leasing is `FOR UPDATE SKIP LOCKED` plus a `lease_until` stamp committed at once: two
//! publishers never pick the same row, and the SQS call happens with no row lock held.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::database::named_statements;
use crate::{Database, StoreError};

/// An outbox row, as the publisher needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub notification_id: String,
    pub action: String,
    pub device_id: String,
    pub task_id: String,
    pub batch_id: String,
    pub order_id: i64,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// The trace context of the request that queued it (an X-Ray header or a correlation id).
    pub trace_context: Option<String>,
}

/// Sends rows a request just committed, right after the commit (best effort: whatever it
/// cannot send, the relay sends later). Implemented over SQS by `keystone-queue`; kept as a
/// trait here so functions that never publish do not link an SQS client.
pub trait OutboxPublisher: Send + Sync + std::fmt::Debug {
    /// Publishes the given outbox rows if they are still unpublished and not leased.
    fn publish_committed<'a>(
        &'a self,
        outbox_ids: &'a [i64],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Leases up to `limit` unpublished rows, oldest first.
///
/// # Errors
/// Database failures.
pub async fn lease_unpublished(
    db: &Database,
    limit: i64,
    lease: Duration,
) -> Result<Vec<OutboxRow>, StoreError> {
    lease_rows(db, None, limit, lease).await
}

/// Leases the given rows, skipping any already published or leased by someone else.
///
/// # Errors
/// Database failures.
pub async fn lease_by_ids(
    db: &Database,
    ids: &[i64],
    lease: Duration,
) -> Result<Vec<OutboxRow>, StoreError> {
    let limit = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    lease_rows(db, Some(ids), limit, lease).await
}

async fn lease_rows(
    db: &Database,
    ids: Option<&[i64]>,
    limit: i64,
    lease: Duration,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut tx = db.begin().await?;
    let mut rows: Vec<OutboxRow> = sqlx::query_as(
        "WITH picked AS ( \
             SELECT id FROM recorder_outbox \
             WHERE ($1::bigint[] IS NULL OR id = ANY($1)) \
               AND published_at IS NULL AND parked_at IS NULL AND deleted_at IS NULL \
               AND (lease_until IS NULL OR lease_until < now()) \
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE recorder_outbox o \
         SET lease_until = now() + $3 * interval '1 millisecond', \
             publish_attempts = o.publish_attempts + 1 \
         FROM picked WHERE o.id = picked.id \
         RETURNING o.id, o.notification_id, o.action, o.device_id, o.task_id, \
                   o.batch_id, o.order_id, o.reason, o.created_at, o.trace_context",
    )
    .bind(ids)
    .bind(limit)
    .bind(crate::millis(lease))
    .persistent(named_statements())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.sort_unstable_by_key(|r| r.id);
    Ok(rows)
}

/// Marks rows published and ends their lease.
///
/// # Errors
/// Database failures.
pub async fn mark_published(db: &Database, ids: &[i64]) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let affected = sqlx::query(
        "UPDATE recorder_outbox SET published_at = now(), lease_until = NULL, last_error = NULL \
         WHERE id = ANY($1) AND published_at IS NULL",
    )
    .bind(ids)
    .persistent(named_statements())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(affected)
}

/// Why one row was not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFailure {
    pub outbox_id: i64,
    pub reason: String,
    /// SQS (or the encoder) refused this message itself, as opposed to SQS being unreachable:
    /// only refusals count toward parking.
    pub refused: bool,
}

/// Records why rows could not be sent and ends their lease, so the next relay run retries
/// them (the relay's schedule is the backoff). A row refused for the `park_after`-th time is
/// parked: the relay leaves it alone from then on, and newer rows go ahead of it.
///
/// # Errors
/// Database failures.
pub async fn record_publish_failures(
    db: &Database,
    failures: &[PublishFailure],
    park_after: i32,
) -> Result<(), StoreError> {
    if failures.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = failures.iter().map(|f| f.outbox_id).collect();
    let errors: Vec<&str> = failures.iter().map(|f| f.reason.as_str()).collect();
    let refused: Vec<bool> = failures.iter().map(|f| f.refused).collect();
    let mut tx = db.begin().await?;
    let parked: Vec<(i64, String)> = sqlx::query_as(
        "UPDATE recorder_outbox o SET last_error = f.error, lease_until = NULL, \
             publish_rejections = o.publish_rejections + f.refused::int, \
             parked_at = CASE WHEN f.refused AND o.publish_rejections + 1 >= $4 \
                              THEN now() ELSE o.parked_at END \
         FROM unnest($1::bigint[], $2::text[], $3::bool[]) AS f(id, error, refused) \
         WHERE o.id = f.id AND o.published_at IS NULL \
         RETURNING o.id, o.notification_id, o.parked_at IS NOT NULL",
    )
    .bind(&ids)
    .bind(&errors)
    .bind(&refused)
    .bind(park_after)
    .persistent(named_statements())
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .filter(|(_, _, parked): &(i64, String, bool)| *parked)
    .map(|(id, notification, _)| (id, notification))
    .collect();
    tx.commit().await?;
    crate::telemetry::notifications_parked(parked.len());
    for (outbox_id, notification_id) in parked {
        tracing::error!(outbox_id, %notification_id, "notification parked: SQS refused it too often");
    }
    Ok(())
}

/// The backlog the relay reports: age in seconds of the oldest row waiting to be published (0
/// when none), and how many rows are parked.
///
/// # Errors
/// Database failures.
pub async fn backlog(db: &Database) -> Result<(f64, i64), StoreError> {
    let mut tx = db.begin().await?;
    let figures: (f64, i64) = sqlx::query_as(
        "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) \
                    FILTER (WHERE parked_at IS NULL)), 0)::float8, \
                count(*) FILTER (WHERE parked_at IS NOT NULL) \
         FROM recorder_outbox WHERE published_at IS NULL AND deleted_at IS NULL",
    )
    .persistent(named_statements())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(figures)
}

/// Hard-deletes idempotency keys older than `age` (SPEC §6.1 allows purging after 24 h).
///
/// # Errors
/// Database failures.
pub async fn purge_idempotency_keys(db: &Database, age: Duration) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let affected = sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - $1 * interval '1 millisecond'",
    )
    .bind(crate::millis(age))
    .persistent(named_statements())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(affected)
}
