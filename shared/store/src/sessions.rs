//! The collector's own session (SPEC §5.18): logging out, and taking and ending a break at the
//! workstation. Each locks at most the caller's collector row and workstation row, nothing
//! else, so none can wait in a cycle with the order → batch → tasks → workstation ladder.

use keystone_domain::{CollectorSession, DomainError, WorkstationStatus};
use serde::Serialize;

use crate::database::named_statements;
use crate::identity::admitted_seat;
use crate::locking::derived_workstation_status;
use crate::{Database, StoreError};

/// The revocation time that ends every token a collector holds (SPEC §4), `data_collectors`
/// being the row: now, and at least a second past the previous revocation — a login right
/// after a revocation dates its token to the next whole second (`iat` has whole seconds), so a
/// revocation within that second must still reach past it.
macro_rules! revocation_time {
    () => {
        "GREATEST(now(), tokens_revoked_at + interval '1 second')"
    };
}
pub(crate) use revocation_time;

/// The answer of a break or end-break: the workstation and its status now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StationStatusView {
    pub workstation_id: String,
    pub status: WorkstationStatus,
}

/// Ends every token of the collector issued so far (its revocation time moves to now) and takes
/// its workstation offline, in one transaction. A repeat is harmless: the tokens it could
/// present are already refused, so only a token from a later login gets here.
///
/// # Errors
/// [`DomainError::CollectorNotFound`], [`DomainError::SessionEnded`]; database failures.
#[tracing::instrument(skip_all, fields(collector_id = session.collector_id))]
pub async fn log_out(db: &Database, session: &CollectorSession) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    admitted_seat(&mut tx, session).await?;
    sqlx::query(concat!(
        "WITH revoked AS ( \
             UPDATE data_collectors SET tokens_revoked_at = ",
        revocation_time!(),
        " WHERE id = $1 AND deleted_at IS NULL RETURNING id) \
         UPDATE workstations w SET status = 'offline' \
         FROM revoked WHERE w.data_collector_id = revoked.id AND w.deleted_at IS NULL AND w.is_current \
           AND w.status <> 'offline'"
    ))
    .bind(session.collector_id)
    .persistent(named_statements())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!("collector logged out");
    Ok(())
}

/// What a break call does to the locked workstation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakMove {
    /// `active`/`inactive` → `break`; `break` stays.
    Take,
    /// `break` → derived; `active`/`inactive` re-derived.
    End,
}

/// The caller's workstation goes on a break (SPEC §5.18). Idempotent.
///
/// # Errors
/// The session errors (SPEC §4); [`DomainError::WorkstationNotAssigned`];
/// [`DomainError::WorkstationOffline`]; database failures.
#[tracing::instrument(skip_all, fields(collector_id = session.collector_id))]
pub async fn take_break(
    db: &Database,
    session: &CollectorSession,
) -> Result<StationStatusView, StoreError> {
    move_for_break(db, session, BreakMove::Take).await
}

/// The caller's workstation comes back from a break: `active` while one of its batches is
/// active, else `inactive` (SPEC §5.18). Idempotent: it re-derives a workstation not on break.
///
/// # Errors
/// As [`take_break`].
#[tracing::instrument(skip_all, fields(collector_id = session.collector_id))]
pub async fn end_break(
    db: &Database,
    session: &CollectorSession,
) -> Result<StationStatusView, StoreError> {
    move_for_break(db, session, BreakMove::End).await
}

/// Locks the caller's workstation (the last rung of the lock ladder, and the only lock this
/// takes), then moves it with a statement of its own, whose snapshot sees every batch
/// committed while the lock was awaited: a completion that activated a batch meanwhile is
/// counted.
async fn move_for_break(
    db: &Database,
    session: &CollectorSession,
    how: BreakMove,
) -> Result<StationStatusView, StoreError> {
    let mut tx = db.begin().await?;
    let seat = admitted_seat(&mut tx, session).await?;
    let workstation_id = seat
        .workstation_id
        .ok_or(DomainError::WorkstationNotAssigned)?;
    let locked: Option<String> = sqlx::query_scalar(
        "SELECT status FROM workstations WHERE id = $1 AND deleted_at IS NULL AND is_current \
         FOR NO KEY UPDATE",
    )
    .bind(workstation_id)
    .persistent(named_statements())
    .fetch_optional(&mut *tx)
    .await?;
    let current: WorkstationStatus = locked.ok_or(DomainError::WorkstationNotAssigned)?.parse()?;
    if current == WorkstationStatus::Offline {
        return Err(DomainError::WorkstationOffline.into());
    }
    let status: String = sqlx::query_scalar(concat!(
        "UPDATE workstations w SET status = CASE WHEN $2 THEN 'break' ELSE ",
        derived_workstation_status!(),
        " END WHERE w.id = $1 RETURNING w.status"
    ))
    .bind(workstation_id)
    .bind(how == BreakMove::Take)
    .persistent(named_statements())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let status: WorkstationStatus = status.parse()?;
    tracing::info!(workstation_id, %status, "workstation break status set");
    Ok(StationStatusView {
        workstation_id: workstation_id.to_string(),
        status,
    })
}

/// Brings the collector's workstation back from `offline` after a login: `active` while one
/// of its batches is active, else `inactive`. Other statuses stay (a break survives a login).
/// Locks the workstation row alone.
///
/// # Errors
/// Database failures.
pub async fn resume_workstation(db: &Database, collector_id: i64) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let locked: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM workstations \
         WHERE data_collector_id = $1 AND deleted_at IS NULL AND is_current AND status = 'offline' \
         FOR NO KEY UPDATE",
    )
    .bind(collector_id)
    .persistent(named_statements())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(workstation_id) = locked {
        sqlx::query(concat!(
            "UPDATE workstations w SET status = ",
            derived_workstation_status!(),
            " WHERE w.id = $1 AND w.status = 'offline'"
        ))
        .bind(workstation_id)
        .persistent(named_statements())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
