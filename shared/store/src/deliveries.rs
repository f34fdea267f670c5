//! Delivery records of the recorder-notifier consumer (SPEC §7): at most one device call per
//! notification in flight, and none after it was delivered.

use std::time::Duration;

use crate::database::named_statements;
use crate::{Database, StoreError};

/// What claiming a notification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryClaim {
    /// This consumer holds the lease and should call the device (`attempt` counts from 1).
    Claimed { attempt: i32 },
    /// Delivered before: acknowledge without calling the device again.
    AlreadyDelivered,
    /// Another consumer holds an unexpired lease: retry later.
    InFlightElsewhere,
}

/// Claims a notification for delivery with a lease of `lease`.
///
/// A concurrent claim of the same notification waits on the unique index for this statement
/// to commit, then finds the lease taken.
///
/// # Errors
/// Database failures.
pub async fn claim_delivery(
    db: &Database,
    notification_id: &str,
    device_id: &str,
    lease: Duration,
) -> Result<DeliveryClaim, StoreError> {
    let mut tx = db.begin().await?;
    let attempt: Option<i32> = sqlx::query_scalar(
        "INSERT INTO recorder_deliveries (notification_id, device_id, status, lease_until) \
         VALUES ($1, $2, 'in_progress', now() + $3 * interval '1 millisecond') \
         ON CONFLICT (notification_id) DO UPDATE \
             SET status = 'in_progress', lease_until = EXCLUDED.lease_until, \
                 attempts = recorder_deliveries.attempts + 1 \
             WHERE recorder_deliveries.status <> 'delivered' \
               AND (recorder_deliveries.lease_until IS NULL \
                    OR recorder_deliveries.lease_until < now()) \
         RETURNING attempts",
    )
    .bind(notification_id)
    .bind(device_id)
    .bind(crate::millis(lease))
    .persistent(named_statements())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(attempt) = attempt {
        tx.commit().await?;
        return Ok(DeliveryClaim::Claimed { attempt });
    }
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM recorder_deliveries WHERE notification_id = $1")
            .bind(notification_id)
            .persistent(named_statements())
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(match status.as_deref() {
        Some("delivered") => DeliveryClaim::AlreadyDelivered,
        _ => DeliveryClaim::InFlightElsewhere,
    })
}

/// Records a successful (or nothing-left-to-do) device answer.
///
/// # Errors
/// Database failures.
pub async fn mark_delivered(
    db: &Database,
    notification_id: &str,
    response_status: u16,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE recorder_deliveries SET status = 'delivered', delivered_at = now(), \
             lease_until = NULL, response_status = $2, last_error = NULL \
         WHERE notification_id = $1",
    )
    .bind(notification_id)
    .bind(i16::try_from(response_status).unwrap_or(i16::MAX))
    .persistent(named_statements())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Gives up the lease after a failed attempt so the next delivery of the message retries;
/// with `last_attempt` (the receive the queue's redrive policy allows last), records it as
/// dead-lettered instead: SQS moves the message to the DLQ next (SPEC §7 "Delivery records").
///
/// # Errors
/// Database failures.
pub async fn record_failed_attempt(
    db: &Database,
    notification_id: &str,
    response_status: Option<u16>,
    error: &str,
    last_attempt: bool,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE recorder_deliveries SET lease_until = NULL, last_error = $2, response_status = $3, \
             status = CASE WHEN $4 THEN 'dead_lettered' ELSE status END \
         WHERE notification_id = $1 AND status <> 'delivered'",
    )
    .bind(notification_id)
    .bind(error)
    .bind(response_status.and_then(|s| i16::try_from(s).ok()))
    .bind(last_attempt)
    .persistent(named_statements())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
