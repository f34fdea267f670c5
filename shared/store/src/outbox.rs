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
    /// Times a redrive put it back in line (0 for its first publishing).
    pub publish_generation: i32,
}

impl OutboxRow {
    /// The SQS deduplication id of this row's current message: the notification id, and for a
    /// redriven row a new one per redrive (SQS would drop a repeat of the old one for five
    /// minutes after it was sent).
    pub fn deduplication_id(&self) -> String {
        if self.publish_generation == 0 {
            self.notification_id.clone()
        } else {
            format!(
                "{}:redrive-{}",
                self.notification_id, self.publish_generation
            )
        }
    }
}

/// The redrive generation a deduplication id written by [`OutboxRow::deduplication_id`] names
/// (0 for the first publishing, and for an id it did not write).
pub fn generation_of_deduplication_id(deduplication_id: &str) -> i32 {
    deduplication_id
        .rsplit_once(":redrive-")
        .and_then(|(_, generation)| generation.parse().ok())
        .unwrap_or(0)
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

/// The lease statement, over the waiting rows `$candidates` (a condition and an `ORDER BY` /
/// `LIMIT`) picks: takes each picked row unless an earlier waiting row of its device is not
/// picked too (leased by another publisher, or beyond the limit). SQS keeps a device's order
/// only as it accepted the messages, so a device's rows must reach it one after another, in
/// outbox order (SPEC §7 "Order end to end"). `$2` is the lease in milliseconds.
macro_rules! lease_waiting {
    ($candidates:literal) => {
        concat!(
            "WITH candidates AS ( \
                 SELECT id, device_id FROM recorder_outbox \
                 WHERE published_at IS NULL AND parked_at IS NULL AND deleted_at IS NULL \
                   AND (lease_until IS NULL OR lease_until < now()) ",
            $candidates,
            " FOR UPDATE SKIP LOCKED), \
             picked AS ( \
                 SELECT c.id FROM candidates c \
                 WHERE NOT EXISTS ( \
                     SELECT 1 FROM recorder_outbox e \
                     WHERE e.device_id = c.device_id AND e.id < c.id \
                       AND e.settled_at IS NULL AND e.deleted_at IS NULL \
                       AND e.published_at IS NULL AND e.parked_at IS NULL \
                       AND e.id NOT IN (SELECT id FROM candidates))) \
             UPDATE recorder_outbox o \
             SET lease_until = now() + $2 * interval '1 millisecond', \
                 publish_attempts = o.publish_attempts + 1 \
             FROM picked WHERE o.id = picked.id \
             RETURNING o.id, o.notification_id, o.action, o.device_id, o.task_id, o.batch_id, \
                       o.order_id, o.reason, o.created_at, o.trace_context, \
                       o.publish_generation"
        )
    };
}

/// The relay's lease: the `$1` oldest waiting rows.
const LEASE_WAITING: &str = lease_waiting!("ORDER BY id LIMIT $1");

/// The inline publish's lease after a commit: among the rows `$1` only. Its own statement, so
/// neither plan has to serve both cases.
const LEASE_WAITING_BY_IDS: &str = lease_waiting!("AND id = ANY($1) ORDER BY id");

/// The statements whose plans `tests/tests/notification_plans.rs` checks on a large table.
pub const PLANNED_STATEMENTS: [(&str, &str); 3] = [
    ("lease_waiting", LEASE_WAITING),
    ("lease_waiting_by_ids", LEASE_WAITING_BY_IDS),
    ("backlog", BACKLOG),
];

/// Leases up to `limit` rows waiting to be published, oldest first, each device's in order
/// (see `lease_waiting!`).
///
/// # Errors
/// Database failures.
pub async fn lease_unpublished(
    db: &Database,
    limit: i64,
    lease: Duration,
) -> Result<Vec<OutboxRow>, StoreError> {
    lease_with(db, LEASE_WAITING, limit, lease).await
}

/// Leases the given rows, skipping any already published, leased by someone else, or behind
/// an earlier waiting row of their device.
///
/// # Errors
/// Database failures.
pub async fn lease_by_ids(
    db: &Database,
    ids: &[i64],
    lease: Duration,
) -> Result<Vec<OutboxRow>, StoreError> {
    lease_with(db, LEASE_WAITING_BY_IDS, ids, lease).await
}

/// Runs one of the lease statements, whose `$1` is `choice`, and answers the rows in id order.
async fn lease_with<'q, C>(
    db: &Database,
    statement: &'static str,
    choice: C,
    lease: Duration,
) -> Result<Vec<OutboxRow>, StoreError>
where
    C: sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + 'q,
{
    let mut tx = db.begin().await?;
    let mut rows: Vec<OutboxRow> = sqlx::query_as(statement)
        .bind(choice)
        .bind(crate::millis(lease))
        .persistent(named_statements())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    rows.sort_unstable_by_key(|r| r.id);
    Ok(rows)
}

/// Marks rows published, in the order SQS accepted them (`ids` in that order), and ends their
/// lease. Each gets the next publish sequence number, which the consumer compares to know
/// which earlier commands of a device were on the queue before a message.
///
/// # Errors
/// Database failures.
pub async fn mark_published(db: &Database, ids: &[i64]) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let affected = sqlx::query(
        "UPDATE recorder_outbox o SET published_at = now(), lease_until = NULL, \
             last_error = NULL, publish_seq = s.seq \
         FROM (SELECT id, nextval('recorder_outbox_publish_seq') AS seq \
               FROM (SELECT id FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, n) \
                     ORDER BY n OFFSET 0) AS sent) AS s \
         WHERE o.id = s.id AND o.published_at IS NULL",
    )
    .bind(ids)
    .persistent(named_statements())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(affected)
}

/// Ends the lease of rows a publisher took but did not try, because an earlier row of their
/// device failed in the same run: they wait for the next run, and the lease does not count as
/// an attempt.
///
/// # Errors
/// Database failures.
pub async fn release_untried(db: &Database, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE recorder_outbox SET lease_until = NULL, \
             publish_attempts = GREATEST(publish_attempts - 1, 0) \
         WHERE id = ANY($1) AND published_at IS NULL",
    )
    .bind(ids)
    .persistent(named_statements())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
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
                              THEN now() ELSE o.parked_at END, \
             settled_at = CASE WHEN f.refused AND o.publish_rejections + 1 >= $4 \
                               THEN now() ELSE o.settled_at END \
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

/// Two index lookups, not a scan of the outbox's history: the oldest waiting row by the
/// waiting rows' index, the parked ones by theirs.
const BACKLOG: &str = "SELECT COALESCE(( \
         SELECT EXTRACT(EPOCH FROM now() - created_at) FROM recorder_outbox \
         WHERE published_at IS NULL AND parked_at IS NULL AND deleted_at IS NULL \
         ORDER BY id LIMIT 1), 0)::float8, \
     (SELECT count(*) FROM recorder_outbox \
      WHERE parked_at IS NOT NULL AND published_at IS NULL AND deleted_at IS NULL)";

/// The backlog the relay reports: age in seconds of the oldest row waiting to be published (0
/// when none), and how many rows are parked.
///
/// # Errors
/// Database failures.
pub async fn backlog(db: &Database) -> Result<(f64, i64), StoreError> {
    let mut tx = db.begin().await?;
    let figures: (f64, i64) = sqlx::query_as(BACKLOG)
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

/// Removes up to `batch` settled recorder commands older than `age` (delivered or superseded:
/// a command dead-lettered, parked, unpublished or undelivered is never removed) with their
/// delivery records, then up to `batch` delivery records no outbox row explains. Answers how
/// many rows went; the relay calls it again while it removes a full batch (SPEC §7
/// "Retention").
///
/// # Errors
/// Database failures.
pub async fn purge_settled_notifications(
    db: &Database,
    age: Duration,
    batch: i64,
) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let commands: i64 = sqlx::query_scalar(
        "WITH doomed AS ( \
             SELECT o.id, o.notification_id FROM recorder_outbox o \
             JOIN recorder_deliveries d ON d.notification_id = o.notification_id \
             WHERE o.settled_at < now() - $1 * interval '1 millisecond' \
               AND o.published_at IS NOT NULL \
               AND d.status IN ('delivered', 'superseded') \
             ORDER BY o.settled_at LIMIT $2 FOR UPDATE OF o SKIP LOCKED), \
         records AS ( \
             DELETE FROM recorder_deliveries d USING doomed \
             WHERE d.notification_id = doomed.notification_id RETURNING 1), \
         rows AS (DELETE FROM recorder_outbox o USING doomed WHERE o.id = doomed.id RETURNING 1) \
         SELECT (SELECT count(*) FROM rows) + (SELECT count(*) FROM records)",
    )
    .bind(crate::millis(age))
    .bind(batch)
    .persistent(named_statements())
    .fetch_one(&mut *tx)
    .await?;
    let strays = sqlx::query(
        "DELETE FROM recorder_deliveries WHERE id IN ( \
             SELECT d.id FROM recorder_deliveries d \
             WHERE d.updated_at < now() - $1 * interval '1 millisecond' \
               AND d.status IN ('delivered', 'superseded') \
               AND NOT EXISTS (SELECT 1 FROM recorder_outbox o \
                               WHERE o.notification_id = d.notification_id) \
             ORDER BY d.updated_at LIMIT $2)",
    )
    .bind(crate::millis(age))
    .bind(batch)
    .persistent(named_statements())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(u64::try_from(commands).unwrap_or(0) + strays)
}
