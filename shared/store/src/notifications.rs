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
}

impl NotificationState {
    const ALL: [Self; 6] = [
        Self::Pending,
        Self::Published,
        Self::Retrying,
        Self::Delivered,
        Self::DeadLettered,
        Self::Parked,
    ];
}

/// One recorder command of the order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub notification_id: String,
    pub action: String,
    pub device_id: String,
    pub task_id: String,
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
}

impl NotificationRow {
    fn state(&self) -> NotificationState {
        match (self.published, self.parked, self.delivery_status.as_deref()) {
            (false, true, _) => NotificationState::Parked,
            (false, false, _) => NotificationState::Pending,
            (true, _, Some("delivered")) => NotificationState::Delivered,
            (true, _, Some("dead_lettered")) => NotificationState::DeadLettered,
            (true, _, Some(_)) if self.delivery_error.is_some() => NotificationState::Retrying,
            (true, _, _) => NotificationState::Published,
        }
    }
}

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
    let rows: Vec<NotificationRow> = sqlx::query_as(
        "SELECT o.notification_id, o.action, o.device_id, o.task_id, o.batch_id, \
                o.published_at IS NOT NULL AS published, o.parked_at IS NOT NULL AS parked, \
                d.status AS delivery_status, o.publish_attempts, d.attempts AS delivery_attempts, \
                d.last_error AS delivery_error, o.last_error AS publish_error, o.created_at, \
                o.published_at, d.delivered_at \
         FROM recorder_outbox o \
         LEFT JOIN recorder_deliveries d \
                ON d.notification_id = o.notification_id AND d.deleted_at IS NULL \
         WHERE o.order_id = $1 AND o.deleted_at IS NULL \
         ORDER BY o.id",
    )
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
            NotificationView {
                state,
                last_error: row.delivery_error.or(row.publish_error),
                delivery_attempts: row.delivery_attempts.unwrap_or(0),
                notification_id: row.notification_id,
                action: row.action,
                device_id: row.device_id,
                task_id: row.task_id,
                batch_id: row.batch_id,
                publish_attempts: row.publish_attempts,
                created_at: row.created_at,
                published_at: row.published_at,
                delivered_at: row.delivered_at,
            }
        })
        .collect();
    Ok(OrderNotificationsView {
        order_id: order_id.to_string(),
        summary,
        notifications,
    })
}

/// Puts every parked outbox row back in line (SPEC §5.9): the relay publishes it on its next
/// run, and it may be refused `OUTBOX_PARK_AFTER` times again before it is parked again.
///
/// # Errors
/// Database failures.
pub async fn requeue_parked(db: &Database) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let requeued = sqlx::query(
        "UPDATE recorder_outbox SET parked_at = NULL, publish_rejections = 0, lease_until = NULL \
         WHERE parked_at IS NOT NULL AND published_at IS NULL AND deleted_at IS NULL",
    )
    .persistent(named_statements())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(requeued)
}

/// Moves dead-lettered messages back onto the queue (SPEC §5.9). Implemented over SQS by
/// `keystone-queue`; a trait here so the HTTP state need not link an SQS client.
pub trait DeadLetterRedrive: Send + Sync + std::fmt::Debug {
    /// Moves every message now in the dead-letter queue back; answers how many moved.
    fn redrive(&self) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send + '_>>;
}
