//! The lock-ordering API.
//!
//! A request walks down a fixed ladder of scopes, each reachable only from the one above:
//!
//! ```text
//! UnitOfWork ──lock_order──▶ OrderScope ──lock_batches──▶ BatchScope ──settle_workstations──▶ Settled ──commit
//! (unlocked reads,            (order row                   (batch rows, task              (workstation rows
//!  idempotency claim)          locked)                      statements)                    locked last)
//! ```
//!
//! Every step consumes the previous scope, so a transaction cannot lock an order after a
//! batch, a batch after a workstation, or a second order at all.
//!
//! This file holds the ladder: the scopes, their transitions, and the bookkeeping every use
//! case shares (recording batch and order moves, handing out `OrderCompletion`s). Each use
//! case adds its own statements in an `impl BatchScope` block of its own module — completion
//! in `complete_tasks`, edits in `task_edits`, cancellation, recall, edits and deletion of a batch in `batch_controls`, reopening in
//! `reopen`, finalization in `finalize`, the order's own moves in `order_controls` — so each
//! product rule has one place.
//!
//! Figures come from the counters on the order and batch rows (kept by triggers on `tasks`,
//! see the progress-counters migration), returned by the statements that lock those rows: a
//! locking read that waited returns the row as the other transaction committed it, so the
//! counters are exact under the lock. Subqueries are different — in READ COMMITTED a statement
//! that waited for a row lock still evaluates them with the snapshot taken before the wait —
//! so nothing is read through a subquery of a lock statement but the id of the row to lock,
//! which is re-checked once locked.

use std::collections::BTreeSet;

use keystone_domain::{BatchStatus, CollectorSession, DomainError, OrderStatus};
use sqlx::{PgConnection, Postgres, Transaction};

use crate::database::named_statements;
use crate::identity::{SeatRow, seat_sql};
use crate::{Database, StoreError};

/// Where a live batch belongs (order, workstation), read without a lock to explain why a lock
/// statement found nothing.
const BATCH_PLACE_SQL: &str =
    "SELECT order_id, workstation_id FROM batches WHERE id = $1 AND deleted_at IS NULL";

/// [`BATCH_PLACE_SQL`] on `conn`.
async fn batch_place(
    conn: &mut PgConnection,
    batch_id: i64,
) -> Result<Option<(i64, i64)>, StoreError> {
    Ok(sqlx::query_as(BATCH_PLACE_SQL)
        .bind(batch_id)
        .persistent(named_statements())
        .fetch_optional(conn)
        .await?)
}

/// The status a workstation at work derives from its batches: `active` while one of its live
/// batches is active, else `inactive`. `w` names the workstation row; read it in a statement
/// that runs after the workstation's lock was taken, so its snapshot sees every batch move
/// committed meanwhile.
macro_rules! derived_workstation_status {
    () => {
        "CASE WHEN EXISTS (SELECT 1 FROM batches b WHERE b.workstation_id = w.id \
                           AND b.status = 'active' AND b.deleted_at IS NULL) \
              THEN 'active' ELSE 'inactive' END"
    };
}
pub(crate) use derived_workstation_status;

/// A transaction that holds no row lock yet.
pub struct UnitOfWork {
    tx: Transaction<'static, Postgres>,
}

impl UnitOfWork {
    /// Begins the request's only transaction.
    ///
    /// # Errors
    /// When no connection can be had.
    pub async fn begin(db: &Database) -> Result<Self, StoreError> {
        Ok(Self {
            tx: db.begin().await?,
        })
    }

    /// The connection for reads that take no lock and for rows outside the hierarchy.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// The lock sequence of a request that starts from a batch id (SPEC §6): read the batch's
    /// order without a lock, lock the order, then lock the batch and check it still belongs to
    /// that order — one statement, where the batch's `LATERAL` lock depends on the locked order
    /// row, so the order is always locked first.
    ///
    /// With [`OpenBatches::IfCompleting`] and an order that this many completions could
    /// complete (decided on the locked row's counters), every open batch of the order is
    /// locked instead, in ascending id and in a statement of its own (whose snapshot sees
    /// batches committed while this one waited for the order): finalization changes them all.
    ///
    /// With `seated_at` (a collector's workstation), a batch of another workstation is refused
    /// on the unlocked read, before any lock is taken, and a quantity beyond the batch's live
    /// tasks never widens the lock to every open batch: a caller cannot make the request lock
    /// rows it has no business with. Both are re-checked on the locked rows by the caller.
    ///
    /// # Errors
    /// [`DomainError::BatchNotFound`] for a missing or deleted batch (or order);
    /// [`DomainError::BatchNotOnWorkstation`] for another workstation's batch;
    /// [`DomainError::BatchChangedConcurrently`] when it moved to another order meanwhile.
    pub async fn lock_batch_through_order(
        mut self,
        batch_id: i64,
        open: OpenBatches,
        seated_at: Option<i64>,
    ) -> Result<(BatchScope, LockedBatch), StoreError> {
        let row: Option<OrderAndBatchRow> = sqlx::query_as(LOCK_ORDER_AND_BATCH_SQL)
            .bind(batch_id)
            .bind(open.completing())
            .bind(seated_at)
            .persistent(named_statements())
            .fetch_optional(&mut *self.tx)
            .await?;
        self.scope_from_lock(row, batch_id, seated_at).await
    }

    /// [`Self::lock_batch_through_order`] for a collector's request, seated at the collector's
    /// current workstation, in one statement with the collector's seat read and its session
    /// checked ([`LOCK_SEATED_ORDER_AND_BATCH_SQL`]): nothing is locked for a session that no
    /// longer stands or for another workstation's batch.
    ///
    /// # Errors
    /// As [`crate::identity::admit`], then [`DomainError::WorkstationNotAssigned`], then as
    /// [`Self::lock_batch_through_order`].
    pub(crate) async fn lock_batch_of_collector(
        mut self,
        session: &CollectorSession,
        batch_id: i64,
        open: OpenBatches,
    ) -> Result<(SeatRow, BatchScope, LockedBatch), StoreError> {
        let row: Option<SeatedLockRow> = sqlx::query_as(LOCK_SEATED_ORDER_AND_BATCH_SQL)
            .bind(batch_id)
            .bind(open.completing())
            .bind(session.collector_id)
            .bind(session.issued_at)
            .persistent(named_statements())
            .fetch_optional(&mut *self.tx)
            .await?;
        let (seat, admitted, lock) = match row {
            Some(row) => (Some(row.seat), row.admitted, Some(row.lock)),
            None => (None, false, None),
        };
        let seat = crate::identity::admit(session, seat)?;
        let workstation_id = seat
            .workstation_id
            .ok_or(DomainError::WorkstationNotAssigned)?;
        if !admitted {
            return Err(StoreError::Invariant(format!(
                "collector {}'s session stands, but the lock statement did not admit it",
                session.collector_id
            )));
        }
        let (scope, batch) = self
            .scope_from_lock(lock, batch_id, Some(workstation_id))
            .await?;
        Ok((seat, scope, batch))
    }

    /// The scope a lock statement's row describes: the order and the batch locked, or every
    /// open batch of the order locked next when the row says so; or why nothing was locked.
    async fn scope_from_lock(
        mut self,
        row: Option<OrderAndBatchRow>,
        batch_id: i64,
        seated_at: Option<i64>,
    ) -> Result<(BatchScope, LockedBatch), StoreError> {
        let locked = row.and_then(|row| {
            Some((
                (
                    row.order_id?,
                    row.organization_id?,
                    row.order_status.clone()?,
                    row.target_count?,
                    row.order_task_count?,
                    row.order_completed_count?,
                ),
                row,
            ))
        });
        let Some((order, row)) = locked else {
            // Nothing was locked: say why, from an unlocked read (the error path only).
            let seated = batch_place(&mut self.tx, batch_id).await?.map(|(_, at)| at);
            return Err(match (seated, seated_at) {
                (Some(batch_at), Some(caller_at)) if batch_at != caller_at => {
                    DomainError::BatchNotOnWorkstation
                }
                _ => DomainError::BatchNotFound,
            }
            .into());
        };
        let order = LockedOrder::from_row(order)?;
        let order_id = order.id;
        let order_scope = OrderScope { tx: self.tx, order };
        let mut scope = if row.all_open == Some(true) {
            order_scope
                .lock_batches(BatchSelection {
                    ids: vec![batch_id],
                    all_open: true,
                })
                .await?
        } else {
            let batches = match (
                row.batch_pk,
                row.batch_id,
                row.batch_workstation_id,
                row.batch_status,
            ) {
                (Some(id), Some(public_id), Some(workstation_id), Some(status)) => {
                    vec![LockedBatch {
                        id,
                        batch_id: public_id,
                        workstation_id,
                        status: status.parse()?,
                        figures: BatchCounters {
                            task_count: row.batch_task_count.unwrap_or_default(),
                            completed_count: row.batch_completed_count.unwrap_or_default(),
                            failed_count: row.batch_failed_count.unwrap_or_default(),
                            cancelled_count: row.batch_cancelled_count.unwrap_or_default(),
                            pending_count: row.batch_pending_count.unwrap_or_default(),
                        },
                    }]
                }
                _ => Vec::new(),
            };
            BatchScope {
                tx: order_scope.tx,
                order: order_scope.order,
                batches,
                covers_all_open: false,
                touched_workstations: BTreeSet::new(),
            }
        };
        match scope.batch(batch_id).cloned() {
            Some(batch) => Ok((scope, batch)),
            None => Err(scope
                .vanished_batch_reason(batch_id, order_id)
                .await?
                .into()),
        }
    }

    /// Locks the order row (`FOR UPDATE`), the first rung of the ladder.
    ///
    /// # Locks
    /// The live order `order_id`. Returns `None`, rolling back, when there is none.
    ///
    /// # Errors
    /// Database failures, and an unknown status in the row.
    pub async fn lock_order(self, order_id: i64) -> Result<Option<OrderScope>, StoreError> {
        self.lock_order_row(LOCK_ORDER_SQL, order_id).await
    }

    async fn lock_order_row(
        mut self,
        sql: &'static str,
        id: i64,
    ) -> Result<Option<OrderScope>, StoreError> {
        let row: Option<OrderRow> = sqlx::query_as(sql)
            .bind(id)
            .persistent(named_statements())
            .fetch_optional(&mut *self.tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let order = LockedOrder::from_row(row)?;
        Ok(Some(OrderScope { tx: self.tx, order }))
    }
}

/// The live order `$1`, locked.
const LOCK_ORDER_SQL: &str = "SELECT id, organization_id, status, target_count, task_count, \
     completed_count FROM orders WHERE id = $1 AND deleted_at IS NULL FOR UPDATE";

/// The live order of the live batch `$1` and that batch, locked in this order: the batch's
/// `order_id` is read without a lock (the subquery), the order row is locked (the
/// materialized CTE, read first), and the batch is locked in a `LATERAL` subquery that needs
/// the locked order row — unless `$2` (a number of completions) could complete the order,
/// when the caller locks every open batch in a statement of its own. A locking read that
/// waited returns the committed row versions, so the counters are exact; the batch's
/// `order_id` is re-checked against the locked order.
///
/// `$3` (a collector's workstation) keeps another workstation's batch from locking anything,
/// and `$2` widens to every open batch only when it is within the batch's live tasks, both on
/// the unlocked read: a stale read only costs a retryable refusal later, never a lock taken
/// for someone else's batch.
/// [`LOCK_ORDER_AND_BATCH_SQL`] and its seated variant: `$ctes` come first, `$caller` is the
/// condition on the unlocked batch row that keeps it from locking anything, the lock result is
/// CTE `l`, and `$select` reads the answer.
macro_rules! lock_order_and_batch_sql {
    ($ctes:expr, $caller:literal, $select:literal) => {
        concat!(
            "WITH ",
            $ctes,
            "o AS MATERIALIZED ( \
                 SELECT id, organization_id, status, target_count, task_count, completed_count \
                 FROM orders \
                 WHERE id = (SELECT order_id FROM batches WHERE id = $1 AND deleted_at IS NULL \
                               AND ",
            $caller,
            ") \
                   AND deleted_at IS NULL \
                 FOR UPDATE), \
             d AS ( \
                 SELECT o.*, ($2::bigint IS NOT NULL AND o.status IN ('created', 'in_progress') \
                              AND $2 >= o.target_count - o.completed_count \
                              AND $2 <= (SELECT task_count FROM batches WHERE id = $1)) AS all_open \
                 FROM o), \
             l AS ( \
                 SELECT d.id AS order_id, d.organization_id, d.status AS order_status, \
                        d.target_count, d.task_count AS order_task_count, \
                        d.completed_count AS order_completed_count, d.all_open, \
                        b.id AS batch_pk, b.batch_id, b.workstation_id AS batch_workstation_id, \
                        b.status AS batch_status, b.task_count AS batch_task_count, \
                        b.completed_count AS batch_completed_count, \
                        b.failed_count AS batch_failed_count, \
                        b.cancelled_count AS batch_cancelled_count, \
                        b.pending_count AS batch_pending_count \
                 FROM d LEFT JOIN LATERAL ( \
                     SELECT id, batch_id, workstation_id, status, task_count, completed_count, \
                            failed_count, cancelled_count, pending_count \
                     FROM batches \
                     WHERE id = $1 AND order_id = d.id AND deleted_at IS NULL AND NOT d.all_open \
                     FOR UPDATE) b ON true) ",
            $select
        )
    };
}

const LOCK_ORDER_AND_BATCH_SQL: &str = lock_order_and_batch_sql!(
    "",
    "($3::bigint IS NULL OR workstation_id = $3)",
    "SELECT * FROM l"
);

/// [`LOCK_ORDER_AND_BATCH_SQL`] for a collector's request, with the seat read and the session
/// checked first in the same statement (one round trip fewer): `$3` is the collector, `$4` its
/// token's `iat`. Nothing is locked unless the session stands (SPEC §4: the rule of
/// `CollectorSession::admit`, which the caller applies to the same row and which must agree) and
/// the batch is on the collector's current workstation. The seat comes back without the lock
/// columns when nothing was locked, and no row at all for a missing collector.
const LOCK_SEATED_ORDER_AND_BATCH_SQL: &str = lock_order_and_batch_sql!(
    concat!(
        "seat AS MATERIALIZED (",
        seat_sql!(
            ", (dc.status = 'active' AND (dc.tokens_revoked_at IS NULL \
                 OR COALESCE($4::bigint >= floor(extract(epoch FROM dc.tokens_revoked_at))::bigint + 1, \
                             false))) AS admitted",
            "$3"
        ),
        "), "
    ),
    "workstation_id = (SELECT workstation_id FROM seat WHERE admitted)",
    "SELECT seat.*, l.* FROM seat LEFT JOIN l ON true"
);

/// What a lock statement locked: all `None` when it locked nothing.
#[derive(sqlx::FromRow)]
struct OrderAndBatchRow {
    order_id: Option<i64>,
    organization_id: Option<i64>,
    order_status: Option<String>,
    target_count: Option<i32>,
    order_task_count: Option<i64>,
    order_completed_count: Option<i64>,
    all_open: Option<bool>,
    batch_pk: Option<i64>,
    batch_id: Option<String>,
    batch_workstation_id: Option<i64>,
    batch_status: Option<String>,
    batch_task_count: Option<i64>,
    batch_completed_count: Option<i64>,
    batch_failed_count: Option<i64>,
    batch_cancelled_count: Option<i64>,
    batch_pending_count: Option<i64>,
}

/// [`LOCK_SEATED_ORDER_AND_BATCH_SQL`]'s row.
#[derive(sqlx::FromRow)]
struct SeatedLockRow {
    #[sqlx(flatten)]
    seat: SeatRow,
    admitted: bool,
    #[sqlx(flatten)]
    lock: OrderAndBatchRow,
}

/// When a request that starts from a batch must lock every open batch of its order too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenBatches {
    /// The request cannot complete the order (edits, cancels, reopens).
    Never,
    /// The request completes this many tasks: when that can reach the order's target, it may
    /// finalize the order, which changes every open batch.
    IfCompleting(i64),
}

impl OpenBatches {
    /// The completions that may widen the lock, as the lock statements take them (`$2`).
    fn completing(self) -> Option<i64> {
        match self {
            Self::Never => None,
            Self::IfCompleting(quantity) => Some(quantity),
        }
    }
}

/// The locked order, as it was when locked (and as this transaction later changed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedOrder {
    pub id: i64,
    pub organization_id: i64,
    pub status: OrderStatus,
    pub target_count: i64,
    /// Live tasks and live completed tasks (the counters, exact under the lock).
    pub task_count: i64,
    pub completed_count: i64,
}

/// A locked order row as the lock statements return it: id, organization, status, target,
/// task and completed counters.
type OrderRow = (i64, i64, String, i32, i64, i64);

impl LockedOrder {
    fn from_row(
        (id, organization_id, status, target_count, task_count, completed_count): OrderRow,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            id,
            organization_id,
            status: status.parse()?,
            target_count: i64::from(target_count),
            task_count,
            completed_count,
        })
    }
}

/// A locked batch of the locked order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedBatch {
    pub id: i64,
    pub batch_id: String,
    pub workstation_id: i64,
    pub status: BatchStatus,
    /// The batch's counters (SPEC §3), exact under the lock.
    pub figures: BatchCounters,
}

/// Live tasks of a batch, in all and per terminal status, and pending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct BatchCounters {
    pub task_count: i64,
    pub completed_count: i64,
    pub failed_count: i64,
    pub cancelled_count: i64,
    pub pending_count: i64,
}

#[derive(sqlx::FromRow)]
struct LockedBatchRow {
    id: i64,
    batch_id: String,
    workstation_id: i64,
    status: String,
    #[sqlx(flatten)]
    figures: BatchCounters,
}

/// Which batches of the locked order to lock.
#[derive(Debug, Clone, Default)]
pub struct BatchSelection {
    /// Batches named by the request.
    pub ids: Vec<i64>,
    /// Also every open (pending or active) batch of the order: required before the order
    /// can be finalized, because finalization changes all of them.
    pub all_open: bool,
}

/// A transaction holding the order lock.
pub struct OrderScope {
    pub(crate) tx: Transaction<'static, Postgres>,
    pub(crate) order: LockedOrder,
}

impl OrderScope {
    pub fn order(&self) -> &LockedOrder {
        &self.order
    }

    /// Ends the ladder for a request that changed the order row alone: no batch moved, so no
    /// workstation needs re-deriving.
    pub fn settle(self) -> Settled {
        Settled { tx: self.tx }
    }

    /// The organization of a live workstation binding and whether it is still current, read
    /// without a lock (workstations are locked last, when the scope settles, which re-checks
    /// the binding).
    ///
    /// # Errors
    /// Database failures.
    pub async fn workstation_place(
        &mut self,
        workstation_id: i64,
    ) -> Result<Option<WorkstationPlace>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT organization_id, is_current, superseded_by FROM workstations \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(workstation_id)
        .persistent(named_statements())
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    /// Locks the selected live batches of this order, in ascending id, in one statement.
    ///
    /// # Locks
    /// Batches of the locked order only: a named batch that is deleted or belongs to
    /// another order is simply absent from the scope.
    ///
    /// # Errors
    /// Database failures, and an unknown status in a row.
    pub async fn lock_batches(
        mut self,
        selection: BatchSelection,
    ) -> Result<BatchScope, StoreError> {
        let rows: Vec<LockedBatchRow> = sqlx::query_as(
            "SELECT id, batch_id, workstation_id, status, task_count, completed_count, \
                    failed_count, cancelled_count, pending_count FROM batches \
             WHERE order_id = $1 AND deleted_at IS NULL \
               AND (id = ANY($2) OR ($3 AND status IN ('pending', 'active'))) \
             ORDER BY id FOR UPDATE",
        )
        .bind(self.order.id)
        .bind(&selection.ids)
        .bind(selection.all_open)
        .persistent(named_statements())
        .fetch_all(&mut *self.tx)
        .await?;
        let batches = rows
            .into_iter()
            .map(|row| {
                Ok(LockedBatch {
                    id: row.id,
                    batch_id: row.batch_id,
                    workstation_id: row.workstation_id,
                    status: row.status.parse()?,
                    figures: row.figures,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(BatchScope {
            tx: self.tx,
            order: self.order,
            batches,
            covers_all_open: selection.all_open,
            touched_workstations: BTreeSet::new(),
        })
    }
}

/// A workstation binding's organization and whether it is current (SPEC §5.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkstationPlace {
    pub organization_id: i64,
    pub is_current: bool,
    pub superseded_by: Option<i64>,
}

impl WorkstationPlace {
    /// [`DomainError::StationSuperseded`] for a binding that was rebound or unbound: no batch
    /// may be opened on it.
    ///
    /// # Errors
    /// As above.
    pub fn require_current(&self) -> Result<(), DomainError> {
        require_current_binding(self.is_current, self.superseded_by)
    }
}

/// [`DomainError::StationSuperseded`], naming the successor, unless the binding is current: the
/// one rule every use of a binding that may have been replaced applies.
pub(crate) fn require_current_binding(
    is_current: bool,
    superseded_by: Option<i64>,
) -> Result<(), DomainError> {
    if is_current {
        Ok(())
    } else {
        Err(DomainError::StationSuperseded {
            superseded_by: superseded_by.map(|id| id.to_string()),
        })
    }
}

/// Proof that this transaction's conditional UPDATE moved the order to `completed`; the only
/// way to call [`BatchScope::finalize_order`].
#[derive(Debug)]
pub struct OrderCompletion {
    _private: (),
}

/// What an order move found and did (`record_order_move`).
#[derive(Debug)]
pub struct OrderAdvance {
    pub completed_count: i64,
    /// Set when this transaction moved the order to completed.
    pub completion: Option<OrderCompletion>,
}

/// A transaction holding the order lock and its batch locks.
pub struct BatchScope {
    pub(crate) tx: Transaction<'static, Postgres>,
    pub(crate) order: LockedOrder,
    pub(crate) batches: Vec<LockedBatch>,
    pub(crate) covers_all_open: bool,
    /// Workstations whose batches changed status: re-derived when the scope settles.
    pub(crate) touched_workstations: BTreeSet<i64>,
}

impl BatchScope {
    pub fn order(&self) -> &LockedOrder {
        &self.order
    }

    /// A batch this scope holds locked.
    pub fn batch(&self, id: i64) -> Option<&LockedBatch> {
        self.batches.iter().find(|b| b.id == id)
    }

    /// Why a batch named by the request is missing from the lock set: deleted since the
    /// unlocked read (404), or moved to another order (409, retry).
    ///
    /// # Errors
    /// Database failures.
    async fn vanished_batch_reason(
        &mut self,
        batch_id: i64,
        locked_order_id: i64,
    ) -> Result<DomainError, StoreError> {
        let current = batch_place(&mut self.tx, batch_id)
            .await?
            .map(|(order, _)| order);
        Ok(match current {
            Some(other) if other != locked_order_id => DomainError::BatchChangedConcurrently,
            _ => DomainError::BatchNotFound,
        })
    }

    pub(crate) fn require_locked(&self, batch_id: i64) -> Result<(), StoreError> {
        match self.batch(batch_id) {
            Some(_) => Ok(()),
            None => Err(StoreError::Invariant(format!(
                "batch {batch_id} is not locked"
            ))),
        }
    }

    /// The transaction's connection, for reads of rows this scope has locked.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub(crate) fn record_batch_status(
        &mut self,
        batch_id: i64,
        status: BatchStatus,
        workstation_id: i64,
    ) {
        if let Some(batch) = self.batches.iter_mut().find(|b| b.id == batch_id) {
            batch.status = status;
        }
        self.touched_workstations.insert(workstation_id);
    }

    /// Takes note of the status a conditional UPDATE of the order row returned (`None`: it did
    /// not move) and, when it moved the order to completed from any other status, hands out the
    /// proof that lets this transaction finalize it. The only place order moves become
    /// [`OrderCompletion`]s besides [`Self::complete_order_by_decision`].
    ///
    /// # Errors
    /// An unknown status.
    pub(crate) fn record_order_move(
        &mut self,
        completed_count: i64,
        moved_to: Option<&str>,
    ) -> Result<OrderAdvance, StoreError> {
        let mut completion = None;
        if let Some(status) = moved_to {
            let status: OrderStatus = status.parse()?;
            if status == OrderStatus::Completed && self.order.status != OrderStatus::Completed {
                completion = Some(OrderCompletion { _private: () });
            }
            self.order.status = status;
        }
        Ok(OrderAdvance {
            completed_count,
            completion,
        })
    }

    /// Completes the locked order on an admin's decision (from created, in_progress or
    /// paused) with one conditional UPDATE. Returns the order's completed-task count and, when
    /// this UPDATE moved it, the proof that lets this transaction finalize it.
    ///
    /// # Errors
    /// Database failures.
    pub async fn complete_order_by_decision(&mut self) -> Result<OrderAdvance, StoreError> {
        let (completed_count, moved): (i64, bool) = sqlx::query_as(
            "WITH moved AS ( \
                 UPDATE orders SET status = 'completed' \
                 WHERE id = $1 AND status IN ('created', 'in_progress', 'paused') RETURNING id) \
             SELECT (SELECT completed_count FROM orders WHERE id = $1), \
                    EXISTS (SELECT 1 FROM moved)",
        )
        .bind(self.order.id)
        .persistent(named_statements())
        .fetch_one(&mut *self.tx)
        .await?;
        let completion = moved.then(|| {
            self.order.status = OrderStatus::Completed;
            OrderCompletion { _private: () }
        });
        Ok(OrderAdvance {
            completed_count,
            completion,
        })
    }

    /// Locks the workstations whose batches changed status (ascending id, after every other
    /// lock) and re-derives their status: `active` while one of their batches is active,
    /// else `inactive`; `break` and `offline` are left alone. Ends the lock ladder.
    ///
    /// A binding that is no longer current (SPEC §5.17) must not be left with a pending or
    /// active batch: nobody works there any more. Rebinds and unbinds lock the workstation
    /// before they count its open batches, so under this lock either they saw this
    /// transaction's batch and refused, or they finished first and this check refuses.
    ///
    /// # Errors
    /// [`DomainError::StationSuperseded`]; database failures.
    pub async fn settle_workstations(mut self) -> Result<Settled, StoreError> {
        if !self.touched_workstations.is_empty() {
            let ids: Vec<i64> = self.touched_workstations.iter().copied().collect();
            // NO KEY UPDATE, the lock the status UPDATE needs: it does not conflict with the
            // KEY SHARE locks foreign-key checks take on workstations (a batch row updated
            // twice in one transaction re-checks its references), so those never wait here.
            // A locking read returns the rows as last committed, so `is_current` is exact.
            let locked: Vec<(i64, bool)> = sqlx::query_as(
                "SELECT id, is_current FROM workstations WHERE id = ANY($1) AND deleted_at IS NULL \
                 ORDER BY id FOR NO KEY UPDATE",
            )
            .bind(&ids)
            .persistent(named_statements())
            .fetch_all(&mut *self.tx)
            .await?;
            let superseded: Vec<i64> = locked
                .into_iter()
                .filter_map(|(id, is_current)| (!is_current).then_some(id))
                .collect();
            if !superseded.is_empty() {
                self.refuse_open_batches_on(&superseded).await?;
            }
            sqlx::query(concat!(
                "UPDATE workstations w SET status = ",
                derived_workstation_status!(),
                " WHERE w.id = ANY($1) AND w.deleted_at IS NULL \
                   AND w.status IN ('active', 'inactive') AND w.status <> ",
                derived_workstation_status!()
            ))
            .bind(&ids)
            .persistent(named_statements())
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(Settled { tx: self.tx })
    }
}

impl BatchScope {
    /// [`DomainError::StationSuperseded`] when one of these locked, no longer current
    /// workstations holds a pending or active batch (this transaction's own included).
    async fn refuse_open_batches_on(&mut self, superseded: &[i64]) -> Result<(), StoreError> {
        let stranded: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT w.id, w.superseded_by FROM workstations w \
             WHERE w.id = ANY($1) AND EXISTS ( \
                 SELECT 1 FROM batches b WHERE b.workstation_id = w.id \
                   AND b.status IN ('pending', 'active') AND b.deleted_at IS NULL) \
             ORDER BY w.id LIMIT 1",
        )
        .bind(superseded)
        .persistent(named_statements())
        .fetch_optional(&mut *self.tx)
        .await?;
        match stranded {
            Some((workstation_id, superseded_by)) => {
                tracing::info!(workstation_id, "batch refused on a superseded binding");
                require_current_binding(false, superseded_by).map_err(StoreError::from)
            }
            None => Ok(()),
        }
    }
}

/// A transaction past its last lock: it may still write rows outside the hierarchy (the
/// idempotency record) and commit.
pub struct Settled {
    tx: Transaction<'static, Postgres>,
}

impl Settled {
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Commits everything the request changed.
    ///
    /// # Errors
    /// When the commit fails; then nothing was changed.
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}
