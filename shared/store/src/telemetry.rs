//! Business metrics of the transaction crate (SPEC §9 "Operations"), through the `metrics`
//! facade: recorded only after the transaction that did the work committed, and a no-op when
//! no recorder is installed. Names are CloudWatch metric names (docs/operations.md).

/// Tasks a complete-tasks request completed.
pub(crate) fn tasks_completed(count: i64) {
    metrics::counter!("TasksCompleted").increment(u64::try_from(count).unwrap_or(0));
}

/// Completed tasks a reopen request put back to pending.
pub(crate) fn tasks_reopened(count: i64) {
    metrics::counter!("TasksReopened").increment(u64::try_from(count).unwrap_or(0));
}

/// An order this request finalized, and the recorder notifications it queued.
pub(crate) fn order_finalized(notifications: usize) {
    metrics::counter!("OrdersFinalized").increment(1);
    metrics::counter!("NotificationsEnqueued")
        .increment(u64::try_from(notifications).unwrap_or(u64::MAX));
}

/// Recorder notifications a cancellation queued (finalizations count theirs in
/// [`order_finalized`]).
pub(crate) fn notifications_enqueued(count: usize) {
    metrics::counter!("NotificationsEnqueued").increment(u64::try_from(count).unwrap_or(u64::MAX));
}

/// Outbox rows parked by this publisher's report.
pub(crate) fn notifications_parked(count: usize) {
    if count > 0 {
        metrics::counter!("NotificationsParked")
            .increment(u64::try_from(count).unwrap_or(u64::MAX));
    }
}
