//! What became of an order's recorder commands (SPEC §5.8), read from the outbox and the
//! consumer's delivery records, and putting parked rows back in line (SPEC §5.9).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use keystone_domain::DomainError;
use serde::Serialize;

use crate::database::named_statements;
use crate::{Database, StoreError};

/// Where one notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationState {
    /// In the outbox, not yet on the queue.
    Pending,
    /// On the queue; no delivery attempt has failed or finished yet.
    Published,
    /// A delivery attempt failed; SQS will deliver it again.
    Retrying,
    Delivered,
    /// Its last allowed delivery failed, or it was malformed: in the dead-letter queue.
    DeadLettered,
    /// Publishing was refused too often; out of the relay's line until redriven.
    Parked,
    /// On the queue, not tried: an earlier command of the same device has not been delivered
    /// yet (it is retrying, or waiting itself).
    HeldBack,
    /// A redriven `clear` a later command of the same device overtook: never sent, since it
    /// would clear a newer ready task.
    Superseded,
}

impl NotificationState {
    const ALL: [Self; 8] = [
        Self::Pending,
        Self::Published,
        Self::Retrying,
        Self::Delivered,
        Self::DeadLettered,
        Self::Parked,
        Self::HeldBack,
        Self::Superseded,
    ];
}

/// One recorder command of the order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub notification_id: String,
    pub action: keystone_domain::RecorderAction,
    pub device_id: String,
    /// Public id (`task_…`) of the task the command is about.
    pub task_id: String,
    /// Public id (`batch_…`) of the task's batch; `GET /api/v1/batches?batch_id=…` finds it.
    pub batch_id: String,
    pub state: NotificationState,
    pub publish_attempts: i32,
    pub delivery_attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The 200 body of `GET /api/v1/orders/{id}/notifications`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrderNotificationsView {
    pub order_id: String,
    /// Every state, with zero for the absent ones.
    pub summary: BTreeMap<NotificationState, usize>,
    pub notifications: Vec<NotificationView>,
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    notification_id: String,
    action: String,
    device_id: String,
    task_id: String,
    batch_id: String,
    published: bool,
    parked: bool,
    delivery_status: Option<String>,
    publish_attempts: i32,
    delivery_attempts: Option<i32>,
    delivery_error: Option<String>,
    publish_error: Option<String>,
    created_at: DateTime<Utc>,
    published_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    /// A consumer claimed it and its lease ran out with no outcome recorded.
    lease_lapsed: bool,
}

impl NotificationRow {
    fn state(&self) -> NotificationState {
        match (self.published, self.parked, self.delivery_status.as_deref()) {
            (false, true, _) => NotificationState::Parked,
            (false, false, _) => NotificationState::Pending,
            (true, _, Some("delivered")) => NotificationState::Delivered,
            (true, _, Some("dead_lettered")) => NotificationState::DeadLettered,
            (true, _, Some("superseded")) => NotificationState::Superseded,
            (true, _, Some("held_back")) => NotificationState::HeldBack,
            (true, _, Some(_)) if self.delivery_error.is_some() || self.lease_lapsed => {
                NotificationState::Retrying
            }
            (true, _, _) => NotificationState::Published,
        }
    }
}

/// An order's commands by the outbox's order index, each with its delivery record by the
/// records' unique index: the cost follows the order's commands, not the history.
const ORDER_NOTIFICATIONS: &str = "SELECT o.notification_id, o.action, o.device_id, o.task_id, \
            o.batch_id, o.published_at IS NOT NULL AS published, \
            o.parked_at IS NOT NULL AS parked, d.status AS delivery_status, o.publish_attempts, \
            d.attempts AS delivery_attempts, d.last_error AS delivery_error, \
            o.last_error AS publish_error, o.created_at, o.published_at, d.delivered_at, \
            COALESCE(d.status = 'in_progress' AND d.lease_until < now(), false) AS lease_lapsed \
     FROM recorder_outbox o \
     LEFT JOIN recorder_deliveries d \
            ON d.notification_id = o.notification_id AND d.deleted_at IS NULL \
     WHERE o.order_id = $1 AND o.deleted_at IS NULL \
     ORDER BY o.id";

/// The statements whose plans `tests/tests/notification_plans.rs` checks on a large table.
pub const PLANNED_STATEMENTS: [(&str, &str); 1] = [("order_notifications", ORDER_NOTIFICATIONS)];

/// Every recorder command of the order, oldest first, with its state. Two statements in one
/// read-only snapshot, whatever the number of commands.
///
/// # Errors
/// [`DomainError::OrderNotFound`] for a missing or deleted order; database failures.
pub async fn order_notifications(
    db: &Database,
    order_id: i64,
) -> Result<OrderNotificationsView, StoreError> {
    let mut tx = db.begin_read_only_snapshot().await?;
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT id FROM orders WHERE id = $1 AND deleted_at IS NULL")
            .bind(order_id)
            .persistent(named_statements())
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Err(DomainError::OrderNotFound.into());
    }
    let rows: Vec<NotificationRow> = sqlx::query_as(ORDER_NOTIFICATIONS)
        .bind(order_id)
        .persistent(named_statements())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;

    let mut summary: BTreeMap<NotificationState, usize> =
        NotificationState::ALL.iter().map(|s| (*s, 0)).collect();
    let notifications: Vec<NotificationView> = rows
        .into_iter()
        .map(|row| {
            let state = row.state();
            *summary.entry(state).or_insert(0) += 1;
            Ok(NotificationView {
                state,
                last_error: row.delivery_error.or(row.publish_error),
                delivery_attempts: row.delivery_attempts.unwrap_or(0),
                notification_id: row.notification_id,
                action: row.action.parse()?,
                device_id: row.device_id,
                task_id: row.task_id,
                batch_id: row.batch_id,
                publish_attempts: row.publish_attempts,
                created_at: row.created_at,
                published_at: row.published_at,
                delivered_at: row.delivered_at,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(OrderNotificationsView {
        order_id: order_id.to_string(),
        summary,
        notifications,
    })
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RedriveOutcome {
    /// Messages taken out of the dead-letter queue: a recorder command's is replaced by the
    /// command put back in line (counted in `outbox_rows_requeued`), any other message is sent
    /// back to the queue as it was.
    pub dlq_messages_moved: u64,
    /// Dead-lettered and parked commands put back in line, to be published again in their
    /// devices' order.
    pub outbox_rows_requeued: u64,
    /// Messages the dead-letter queue still held when the redrive ended (SQS's approximate
    /// count, those in flight included); redrive again to move them.
    pub dead_letters_left: u64,
    /// The redrive stopped at its time budget rather than at an empty dead-letter queue.
    pub stopped_for_time: bool,
    /// The outbox rows put back in line, for publishing at once.
    #[serde(skip)]
    pub requeued_outbox_ids: Vec<i64>,
}

/// What [`requeue_for_redrive`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Outbox rows put back in line.
    pub outbox_ids: Vec<i64>,
    /// Of the notification ids asked about, those the outbox knows (their dead-letter
    /// messages are replaced by the rows and can be deleted).
    pub known: Vec<String>,
}

/// Puts commands back in line for publishing (SPEC §5.9): every dead-lettered and every parked
/// one, and those of `dead_letters` (notification id and the redrive generation its message
/// was sent under, read from the dead-letter queue) whose current message it is and that
/// were not delivered since. A published command comes back under the next generation (a new
/// deduplication id), loses its place in the publish sequence and is unsettled: its device's
/// commands queued after it no longer wait for it, and those queued after its new message do.
/// Records a consumer is delivering now are left alone. Two statements whatever the numbers.
///
/// # Errors
/// Database failures.
pub async fn requeue_for_redrive(
    db: &Database,
    dead_letters: &[(String, i32)],
) -> Result<Requeued, StoreError> {
    let notifications: Vec<&str> = dead_letters.iter().map(|(n, _)| n.as_str()).collect();
    let generations: Vec<i32> = dead_letters.iter().map(|(_, g)| *g).collect();
    let mut tx = db.begin().await?;
    let outbox_ids: Vec<i64> = sqlx::query_scalar(
        "WITH letters AS ( \
             SELECT * FROM unnest($1::text[], $2::int[]) AS l(notification_id, generation)), \
         chosen AS ( \
             SELECT o.id, o.notification_id FROM recorder_outbox o \
             LEFT JOIN recorder_deliveries d ON d.notification_id = o.notification_id \
             WHERE o.deleted_at IS NULL \
               AND ((o.parked_at IS NOT NULL AND o.published_at IS NULL) \
                    OR (o.published_at IS NOT NULL \
                        AND COALESCE(d.status NOT IN ('delivered', 'superseded'), true) \
                        AND (d.lease_until IS NULL OR d.lease_until < now()) \
                        AND (d.status = 'dead_lettered' \
                             OR EXISTS (SELECT 1 FROM letters \
                                        WHERE letters.notification_id = o.notification_id \
                                          AND letters.generation = o.publish_generation)))) \
             FOR UPDATE OF o), \
         records AS ( \
             UPDATE recorder_deliveries d SET status = 'in_progress', lease_until = NULL \
             FROM chosen WHERE d.notification_id = chosen.notification_id \
               AND d.status NOT IN ('delivered', 'superseded') RETURNING 1), \
         requeued AS ( \
             UPDATE recorder_outbox o SET \
                 publish_generation = o.publish_generation \
                     + CASE WHEN o.published_at IS NULL THEN 0 ELSE 1 END, \
                 published_at = NULL, publish_seq = NULL, settled_at = NULL, \
                 lease_until = NULL, parked_at = NULL, publish_rejections = 0 \
             FROM chosen WHERE o.id = chosen.id RETURNING o.id) \
         SELECT id FROM requeued ORDER BY id",
    )
    .bind(&notifications)
    .bind(&generations)
    .persistent(named_statements())
    .fetch_all(&mut *tx)
    .await?;
    let known: Vec<String> = sqlx::query_scalar(
        "SELECT notification_id FROM recorder_outbox WHERE notification_id = ANY($1)",
    )
    .bind(&notifications)
    .persistent(named_statements())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Requeued { outbox_ids, known })
}

/// The whole redrive (SPEC §5.9) over SQS, implemented by `keystone-queue`; a trait here so
/// the HTTP state need not link an SQS client.
pub trait DeadLetterRedrive: Send + Sync + std::fmt::Debug {
    /// Puts dead-lettered and parked commands back in line and empties the dead-letter queue
    /// within the redrive's time budget.
    fn redrive<'a>(
        &'a self,
        db: &'a Database,
    ) -> Pin<Box<dyn Future<Output = Result<RedriveOutcome, String>> + Send + 'a>>;
}
