//! Delivery records of the recorder-notifier consumer (SPEC §7): at most one device call per
//! notification in flight, none after it was delivered, and a device's commands in the order
//! they went on the queue whatever order SQS hands them over in.

use std::time::Duration;

use crate::database::named_statements;
use crate::{Database, StoreError};

/// What claiming a notification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryClaim {
    /// This consumer holds the lease and should call the device (`attempt` counts from 1).
    Claimed { attempt: i32 },
    /// Delivered (or superseded) before: acknowledge without calling the device again.
    AlreadyDelivered,
    /// Another consumer holds an unexpired lease: retry later.
    InFlightElsewhere,
    /// An earlier command of the device, queued before this one, is not settled yet: not tried;
    /// retry later. `dead_lettered` when this was the last receive SQS allows (the record says
    /// so: the message leaves for the DLQ with the command it waited for).
    HeldBack { behind: String, dead_lettered: bool },
    /// A `clear` a later command of the device was delivered before (it would clear a newer
    /// ready task): recorded as superseded; acknowledge without calling the device.
    Superseded,
}

/// What the consumer knows about the message being handled.
#[derive(Debug, Clone, Copy)]
pub struct Receive<'a> {
    pub notification_id: &'a str,
    pub device_id: &'a str,
    /// This is the last receive the queue's redrive policy allows.
    pub last: bool,
}

/// The delivery record's status, and what the outbox says about the command's place in its
/// device's line: the earliest earlier command queued before it and not settled, and for a
/// `clear`, whether a later command of the device was delivered.
const GATE: &str = "SELECT d.status, g.blocked_by, COALESCE(g.overtaken, false) \
     FROM (SELECT $1::text AS notification_id) n \
     LEFT JOIN recorder_deliveries d ON d.notification_id = n.notification_id \
     LEFT JOIN LATERAL ( \
         SELECT (SELECT e.notification_id FROM recorder_outbox e \
                 WHERE e.device_id = o.device_id AND e.id < o.id \
                   AND e.settled_at IS NULL AND e.deleted_at IS NULL \
                   AND e.publish_seq IS NOT NULL \
                   AND (o.publish_seq IS NULL OR e.publish_seq < o.publish_seq) \
                 ORDER BY e.id LIMIT 1) AS blocked_by, \
                o.action = 'clear' AND EXISTS ( \
                    SELECT 1 FROM recorder_outbox l \
                    JOIN recorder_deliveries ld ON ld.notification_id = l.notification_id \
                    WHERE l.device_id = o.device_id AND l.id > o.id \
                      AND ld.status = 'delivered') AS overtaken \
         FROM recorder_outbox o \
         WHERE o.notification_id = n.notification_id AND o.deleted_at IS NULL) g ON true";

/// The statements whose plans `tests/tests/notification_plans.rs` checks on a large table.
pub const PLANNED_STATEMENTS: [(&str, &str); 1] = [("delivery_gate", GATE)];

/// Claims a notification for delivery with a lease of `lease`, unless it was delivered, an
/// earlier command of its device must go first, or it is a `clear` a later delivered command
/// superseded.
///
/// A concurrent claim of the same notification waits on the unique index for this statement
/// to commit, then finds the lease taken.
///
/// # Errors
/// Database failures.
pub async fn claim_delivery(
    db: &Database,
    receive: Receive<'_>,
    lease: Duration,
) -> Result<DeliveryClaim, StoreError> {
    let mut tx = db.begin().await?;
    let (status, blocked_by, overtaken): (Option<String>, Option<String>, bool) =
        sqlx::query_as(GATE)
            .bind(receive.notification_id)
            .persistent(named_statements())
            .fetch_one(&mut *tx)
            .await?;
    if matches!(status.as_deref(), Some("delivered" | "superseded")) {
        tx.commit().await?;
        return Ok(DeliveryClaim::AlreadyDelivered);
    }
    if let Some(behind) = blocked_by {
        let reason = format!("waiting for {behind}");
        let dead_lettered = hold_back(&mut tx, &[receive], &reason).await? > 0 && receive.last;
        tx.commit().await?;
        return Ok(DeliveryClaim::HeldBack {
            behind,
            dead_lettered,
        });
    }
    if overtaken {
        sqlx::query(
            "WITH record AS ( \
                 INSERT INTO recorder_deliveries \
                     (notification_id, device_id, status, attempts, last_error) \
                 VALUES ($1, $2, 'superseded', 0, \
                         'a later command of the device was delivered first') \
                 ON CONFLICT (notification_id) DO UPDATE \
                     SET status = 'superseded', lease_until = NULL, \
                         last_error = EXCLUDED.last_error \
                     WHERE recorder_deliveries.status NOT IN ('delivered', 'superseded') \
                 RETURNING notification_id) \
             UPDATE recorder_outbox o SET settled_at = now() \
             FROM record WHERE o.notification_id = record.notification_id",
        )
        .bind(receive.notification_id)
        .bind(receive.device_id)
        .persistent(named_statements())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(DeliveryClaim::Superseded);
    }
    // Claiming a command that had settled as dead-lettered (a native DLQ move brought it
    // back) puts it back in its device's line: later commands wait for it again.
    let attempt: Option<i32> = sqlx::query_scalar(
        "WITH claimed AS ( \
             INSERT INTO recorder_deliveries (notification_id, device_id, status, lease_until) \
             VALUES ($1, $2, 'in_progress', now() + $3 * interval '1 millisecond') \
             ON CONFLICT (notification_id) DO UPDATE \
                 SET status = 'in_progress', lease_until = EXCLUDED.lease_until, \
                     attempts = recorder_deliveries.attempts + 1 \
                 WHERE recorder_deliveries.status NOT IN ('delivered', 'superseded') \
                   AND (recorder_deliveries.lease_until IS NULL \
                        OR recorder_deliveries.lease_until < now()) \
             RETURNING notification_id, attempts), \
         unsettled AS ( \
             UPDATE recorder_outbox o SET settled_at = NULL FROM claimed \
             WHERE o.notification_id = claimed.notification_id AND o.settled_at IS NOT NULL) \
         SELECT attempts FROM claimed",
    )
    .bind(receive.notification_id)
    .bind(receive.device_id)
    .bind(crate::millis(lease))
    .persistent(named_statements())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(match attempt {
        Some(attempt) => DeliveryClaim::Claimed { attempt },
        None => DeliveryClaim::InFlightElsewhere,
    })
}

/// Records messages not tried because an earlier command of their device is not settled
/// (the gate above, or a failure earlier in the same SQS batch): `held_back` with `reason`, or
/// `dead_lettered` (and settled) for those on their last allowed receive, which leave for the
/// DLQ now. Records delivered, superseded or leased by a consumer stay as they are. Answers
/// how many records it wrote.
async fn hold_back(
    tx: &mut sqlx::PgConnection,
    messages: &[Receive<'_>],
    reason: &str,
) -> Result<u64, StoreError> {
    let notifications: Vec<&str> = messages.iter().map(|m| m.notification_id).collect();
    let devices: Vec<&str> = messages.iter().map(|m| m.device_id).collect();
    let last: Vec<bool> = messages.iter().map(|m| m.last).collect();
    let written: i64 = sqlx::query_scalar(
        "WITH records AS ( \
             INSERT INTO recorder_deliveries \
                 (notification_id, device_id, status, attempts, last_error) \
             SELECT m.notification_id, m.device_id, \
                    CASE WHEN m.last THEN 'dead_lettered' ELSE 'held_back' END, 0, $4 \
             FROM unnest($1::text[], $2::text[], $3::bool[]) AS m(notification_id, device_id, last) \
             ON CONFLICT (notification_id) DO UPDATE \
                 SET status = EXCLUDED.status, last_error = EXCLUDED.last_error, \
                     lease_until = NULL \
                 WHERE recorder_deliveries.status NOT IN ('delivered', 'superseded') \
                   AND (recorder_deliveries.lease_until IS NULL \
                        OR recorder_deliveries.lease_until < now()) \
             RETURNING notification_id, status), \
         settled AS ( \
             UPDATE recorder_outbox o SET settled_at = now() FROM records \
             WHERE o.notification_id = records.notification_id \
               AND records.status = 'dead_lettered') \
         SELECT count(*) FROM records",
    )
    .bind(&notifications)
    .bind(&devices)
    .bind(&last)
    .bind(reason)
    .persistent(named_statements())
    .fetch_one(&mut *tx)
    .await?;
    Ok(u64::try_from(written).unwrap_or(0))
}

/// Records the later messages of a device's group in one SQS batch that were not tried
/// because an earlier one failed (SPEC §7 "Order per device"), as [`DeliveryClaim::HeldBack`]
/// records them. One statement whatever their number.
///
/// # Errors
/// Database failures.
pub async fn record_held_back(
    db: &Database,
    messages: &[Receive<'_>],
    behind: &str,
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    hold_back(&mut tx, messages, &format!("waiting for {behind}")).await?;
    tx.commit().await?;
    Ok(())
}

/// Records a successful (or nothing-left-to-do) device answer; the command is settled and
/// its device's later commands may go.
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
        "WITH record AS ( \
             UPDATE recorder_deliveries SET status = 'delivered', delivered_at = now(), \
                 lease_until = NULL, response_status = $2, last_error = NULL \
             WHERE notification_id = $1 RETURNING notification_id) \
         UPDATE recorder_outbox o SET settled_at = now() \
         FROM record WHERE o.notification_id = record.notification_id",
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
/// dead-lettered, and settled, instead: SQS moves the message to the DLQ next (SPEC §7
/// "Delivery records").
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
        "WITH record AS ( \
             UPDATE recorder_deliveries SET lease_until = NULL, last_error = $2, \
                 response_status = $3, \
                 status = CASE WHEN $4 THEN 'dead_lettered' ELSE status END \
             WHERE notification_id = $1 AND status NOT IN ('delivered', 'superseded') \
             RETURNING notification_id, status) \
         UPDATE recorder_outbox o SET settled_at = now() \
         FROM record WHERE o.notification_id = record.notification_id \
           AND record.status = 'dead_lettered'",
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
