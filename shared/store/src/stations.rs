//! Workstation bindings (SPEC §5.17): bind a robot and a collector, change a station, rebind
//! or unbind it, and read a binding with its history.
//!
//! A rebind or unbind never rewrites the row that batches and tasks point at: the old row
//! stops being current and a rebind inserts the new one, so an old batch still shows the
//! robot and the collector that produced it. A binding with a pending or active batch is
//! neither rebound nor unbound; the workstation row is locked (`FOR UPDATE`, which waits for
//! a batch insert's foreign-key lock) before its open batches are counted, and every request
//! that opens a batch re-checks the binding under its own workstation lock (`settle`).
//!
//! Locks, in this order and nothing else: the collector's row, the robot's row, the
//! workstation's row. Logout and collector deletion lock a collector before its workstation
//! too; nothing locks a workstation first and a collector or robot after it.

use chrono::{DateTime, Utc};
use keystone_domain::stations::{CreateStationRequest, MAX_LISTED_BINDINGS, StationUpdateRequest};
use keystone_domain::{CollectorStatus, DomainError, WorkstationStatus};
use serde::Serialize;
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::database::named_statements;
use crate::locking::{derived_workstation_status, require_current_binding};
use crate::reference::{StationRow, StationView, station_columns};
use crate::{Database, StoreError};

/// A binding with its history: what `GET /api/v1/stations/{id}` and the station writes answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StationDetailView {
    #[serde(flatten)]
    pub station: StationView,
    pub metadata: serde_json::Value,
    /// False once the station was rebound (a newer binding took over) or unbound.
    pub is_current: bool,
    pub superseded_at: Option<DateTime<Utc>>,
    /// The binding that replaced this one; null while current and after an unbind.
    pub superseded_by: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The station's bindings, this one included, newest first (at most 100).
    pub bindings: Vec<StationBindingView>,
    /// How many bindings the station has had.
    pub binding_count: i64,
}

/// One binding of a station's history: who worked with which robot, and when.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StationBindingView {
    pub id: String,
    pub robot_id: Option<String>,
    pub device_id: Option<String>,
    pub data_collector_id: Option<String>,
    pub collector_operator_id: Option<String>,
    pub collector_name: Option<String>,
    pub is_current: bool,
    /// When the binding was made.
    pub created_at: DateTime<Utc>,
    pub superseded_at: Option<DateTime<Utc>>,
    pub superseded_by: Option<String>,
}

#[derive(sqlx::FromRow)]
struct StationDetailRow {
    #[sqlx(flatten)]
    station: StationRow,
    metadata: serde_json::Value,
    is_current: bool,
    superseded_at: Option<DateTime<Utc>>,
    superseded_by: Option<i64>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct BindingRow {
    id: i64,
    robot_id: Option<i64>,
    device_id: Option<String>,
    data_collector_id: Option<i64>,
    collector_operator_id: Option<String>,
    collector_name: Option<String>,
    is_current: bool,
    created_at: DateTime<Utc>,
    superseded_at: Option<DateTime<Utc>>,
    superseded_by: Option<i64>,
    binding_count: i64,
}

/// The binding `$1`, current or not. Its robot and collector are shown even if deleted since:
/// an old binding tells who produced its batches.
const STATION_DETAIL: &str = concat!(
    "SELECT ",
    station_columns!(),
    ", COALESCE(w.metadata, '{}'::jsonb) AS metadata, w.is_current, w.superseded_at, \
       w.superseded_by, w.updated_at \
     FROM workstations w \
     LEFT JOIN robots r ON r.id = w.robot_id \
     LEFT JOIN robot_types rt ON rt.id = r.robot_type_id \
     LEFT JOIN data_collectors dc ON dc.id = w.data_collector_id \
     WHERE w.id = $1 AND w.deleted_at IS NULL"
);

/// The bindings of `$1`'s station, newest first, at most `$2`: the chain of `superseded_by`
/// walked backwards (through its unique index) and forwards (primary keys) from `$1`.
const STATION_BINDINGS: &str = "WITH RECURSIVE older AS ( \
         SELECT w.id FROM workstations w WHERE w.id = $1 AND w.deleted_at IS NULL \
         UNION ALL \
         SELECT w.id FROM workstations w JOIN older ON w.superseded_by = older.id), \
     newer AS ( \
         SELECT w.superseded_by AS id FROM workstations w \
         WHERE w.id = $1 AND w.deleted_at IS NULL AND w.superseded_by IS NOT NULL \
         UNION ALL \
         SELECT w.superseded_by FROM workstations w JOIN newer ON w.id = newer.id \
         WHERE w.superseded_by IS NOT NULL), \
     chain AS (SELECT id FROM older UNION ALL SELECT id FROM newer) \
     SELECT w.id, w.robot_id, r.device_id, w.data_collector_id, \
            dc.operator_id AS collector_operator_id, dc.name AS collector_name, w.is_current, \
            w.created_at, w.superseded_at, w.superseded_by, count(*) OVER () AS binding_count \
     FROM chain JOIN workstations w ON w.id = chain.id \
     LEFT JOIN robots r ON r.id = w.robot_id \
     LEFT JOIN data_collectors dc ON dc.id = w.data_collector_id \
     ORDER BY w.id DESC LIMIT $2";

/// A binding and its history, read on `conn` (a transaction sees its own writes).
async fn station_detail(
    conn: &mut PgConnection,
    station_id: i64,
) -> Result<StationDetailView, StoreError> {
    let row: Option<StationDetailRow> = sqlx::query_as(STATION_DETAIL)
        .bind(station_id)
        .persistent(named_statements())
        .fetch_optional(&mut *conn)
        .await?;
    let row = row.ok_or(DomainError::StationNotFound)?;
    let bindings: Vec<BindingRow> = sqlx::query_as(STATION_BINDINGS)
        .bind(station_id)
        .bind(MAX_LISTED_BINDINGS)
        .persistent(named_statements())
        .fetch_all(&mut *conn)
        .await?;
    let binding_count = bindings.first().map_or(1, |b| b.binding_count);
    Ok(StationDetailView {
        station: row.station.try_into()?,
        metadata: row.metadata,
        is_current: row.is_current,
        superseded_at: row.superseded_at,
        superseded_by: row.superseded_by.map(|id| id.to_string()),
        updated_at: row.updated_at,
        bindings: bindings
            .into_iter()
            .map(|b| StationBindingView {
                id: b.id.to_string(),
                robot_id: b.robot_id.map(|id| id.to_string()),
                device_id: b.device_id,
                data_collector_id: b.data_collector_id.map(|id| id.to_string()),
                collector_operator_id: b.collector_operator_id,
                collector_name: b.collector_name,
                is_current: b.is_current,
                created_at: b.created_at,
                superseded_at: b.superseded_at,
                superseded_by: b.superseded_by.map(|id| id.to_string()),
            })
            .collect(),
        binding_count,
    })
}

/// One binding, current or not, with its station's history. Two statements in one snapshot.
///
/// # Errors
/// [`DomainError::StationNotFound`]; database failures.
pub async fn get_station(db: &Database, station_id: i64) -> Result<StationDetailView, StoreError> {
    let mut tx = db.begin_read_only_snapshot().await?;
    let view = station_detail(&mut tx, station_id).await?;
    tx.commit().await?;
    Ok(view)
}

/// A collector about to be bound, locked.
#[derive(sqlx::FromRow)]
struct LockedCollector {
    status: String,
    organization_id: Option<i64>,
    operator_id: String,
}

/// Locks a live collector's row (before any workstation) and checks it may be bound: active,
/// with an organization.
async fn lock_bindable_collector(
    conn: &mut PgConnection,
    collector_id: i64,
) -> Result<LockedCollector, StoreError> {
    let row: Option<LockedCollector> = sqlx::query_as(
        "SELECT status, organization_id, operator_id FROM data_collectors \
         WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE",
    )
    .bind(collector_id)
    .persistent(named_statements())
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(DomainError::UnknownCollector)?;
    let status: CollectorStatus = row.status.parse()?;
    if status != CollectorStatus::Active {
        return Err(DomainError::CollectorNotActive {
            collector_status: status,
        }
        .into());
    }
    if row.organization_id.is_none() {
        return Err(DomainError::CollectorWithoutOrganization.into());
    }
    Ok(row)
}

/// A robot about to be bound, locked.
#[derive(sqlx::FromRow)]
struct LockedRobot {
    factory_id: Option<i64>,
    device_id: Option<String>,
}

/// Locks a live robot's row (after the collector's, before any workstation's): binds of one
/// robot take turns, so the check for its current station that follows is exact.
async fn lock_robot(conn: &mut PgConnection, robot_id: i64) -> Result<LockedRobot, StoreError> {
    let row: Option<LockedRobot> = sqlx::query_as(
        "SELECT factory_id, device_id FROM robots WHERE id = $1 AND deleted_at IS NULL \
         FOR NO KEY UPDATE",
    )
    .bind(robot_id)
    .persistent(named_statements())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.ok_or(DomainError::UnknownRobot)?)
}

/// Refuses a robot or collector (either may be absent) that another current binding than
/// `except` holds. Runs after their rows are locked, in a statement of its own, so it sees every
/// bind committed meanwhile.
async fn refuse_bound(
    conn: &mut PgConnection,
    robot_id: Option<i64>,
    collector_id: Option<i64>,
    except: i64,
) -> Result<(), StoreError> {
    let (robot_seat, collector_seat): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT min(id) FROM workstations WHERE robot_id = $1 AND deleted_at IS NULL \
                   AND is_current AND id <> $3), \
                (SELECT min(id) FROM workstations WHERE data_collector_id = $2 \
                   AND deleted_at IS NULL AND is_current AND id <> $3)",
    )
    .bind(robot_id)
    .bind(collector_id)
    .bind(except)
    .persistent(named_statements())
    .fetch_one(&mut *conn)
    .await?;
    if let Some(seat) = robot_seat {
        return Err(DomainError::RobotAlreadyBound {
            workstation_id: seat.to_string(),
        }
        .into());
    }
    if let Some(seat) = collector_seat {
        return Err(DomainError::CollectorAlreadyBound {
            workstation_id: seat.to_string(),
        }
        .into());
    }
    Ok(())
}

/// The name a station gets when the bind names none: its robot's device and its collector.
fn default_station_name(robot_id: i64, robot: &LockedRobot, collector: &LockedCollector) -> String {
    let robot = robot
        .device_id
        .clone()
        .unwrap_or_else(|| format!("robot {robot_id}"));
    format!("{robot} · {}", collector.operator_id)
}

/// Binds a live robot and an active collector into a new current station of the collector's
/// organization and the robot's factory, `inactive` until a batch starts. Locks the collector,
/// then the robot.
///
/// # Errors
/// [`DomainError::UnknownCollector`], [`DomainError::CollectorNotActive`],
/// [`DomainError::CollectorWithoutOrganization`], [`DomainError::UnknownRobot`],
/// [`DomainError::RobotAlreadyBound`], [`DomainError::CollectorAlreadyBound`]; database
/// failures.
#[tracing::instrument(skip_all, fields(robot_id = request.robot_id, collector_id = request.data_collector_id))]
pub async fn create_station(
    db: &Database,
    request: &CreateStationRequest,
) -> Result<StationDetailView, StoreError> {
    let mut tx = db.begin().await?;
    let collector = lock_bindable_collector(&mut tx, request.data_collector_id).await?;
    let robot = lock_robot(&mut tx, request.robot_id).await?;
    refuse_bound(
        &mut tx,
        Some(request.robot_id),
        Some(request.data_collector_id),
        0,
    )
    .await?;
    let name = request
        .name
        .clone()
        .unwrap_or_else(|| default_station_name(request.robot_id, &robot, &collector));
    let station_id: i64 = sqlx::query_scalar(
        "INSERT INTO workstations (robot_id, data_collector_id, organization_id, factory_id, \
                                   name, status, metadata) \
         VALUES ($1, $2, $3, $4, $5, 'inactive', $6) RETURNING id",
    )
    .bind(request.robot_id)
    .bind(request.data_collector_id)
    .bind(collector.organization_id)
    .bind(robot.factory_id)
    .bind(&name)
    .bind(Json(&request.metadata))
    .persistent(named_statements())
    .fetch_one(&mut *tx)
    .await?;
    let view = station_detail(&mut tx, station_id).await?;
    tx.commit().await?;
    tracing::info!(station_id, "station bound");
    Ok(view)
}

/// A binding as read before or after its lock.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
struct BindingPlace {
    is_current: bool,
    superseded_by: Option<i64>,
    robot_id: Option<i64>,
    data_collector_id: Option<i64>,
    organization_id: i64,
}

impl BindingPlace {
    fn require_current(&self) -> Result<(), DomainError> {
        require_current_binding(self.is_current, self.superseded_by)
    }
}

macro_rules! binding_place {
    () => {
        "SELECT is_current, superseded_by, robot_id, data_collector_id, organization_id \
         FROM workstations WHERE id = $1 AND deleted_at IS NULL"
    };
}

/// How a station write locks the binding: `FOR UPDATE` when it ends the binding (it must wait
/// for a batch insert's foreign-key lock, so the open-batch count that follows sees that
/// batch), `FOR NO KEY UPDATE` for an edit in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BindingLock {
    Ending,
    InPlace,
}

async fn read_binding(
    conn: &mut PgConnection,
    station_id: i64,
    lock: Option<BindingLock>,
) -> Result<BindingPlace, StoreError> {
    let sql = match lock {
        None => binding_place!(),
        Some(BindingLock::Ending) => concat!(binding_place!(), " FOR UPDATE"),
        Some(BindingLock::InPlace) => concat!(binding_place!(), " FOR NO KEY UPDATE"),
    };
    let row: Option<BindingPlace> = sqlx::query_as(sql)
        .bind(station_id)
        .persistent(named_statements())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.ok_or(DomainError::StationNotFound)?)
}

/// Refuses to end a locked binding that still has pending or active batches.
async fn refuse_open_batches(conn: &mut PgConnection, station_id: i64) -> Result<(), StoreError> {
    let open_batch_count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM batches WHERE workstation_id = $1 \
           AND status IN ('pending', 'active') AND deleted_at IS NULL",
    )
    .bind(station_id)
    .persistent(named_statements())
    .fetch_one(&mut *conn)
    .await?;
    if open_batch_count > 0 {
        return Err(DomainError::StationHasOpenBatches { open_batch_count }.into());
    }
    Ok(())
}

/// Ends binding `$1` and inserts its successor in one statement: the new row's id is drawn
/// first so the old row can name it. `$2` a new robot (and `$4` its factory), `$3` a new
/// collector; the name, organization and metadata carry over, and the status too unless the
/// collector changes (a new collector starts `inactive`).
const REBIND: &str = "WITH next AS (SELECT nextval(pg_get_serial_sequence('workstations', 'id')) AS id), \
     old AS ( \
         UPDATE workstations w \
         SET is_current = false, superseded_at = now(), superseded_by = next.id \
         FROM next WHERE w.id = $1 AND w.is_current \
         RETURNING w.robot_id, w.data_collector_id, w.organization_id, w.factory_id, w.name, \
                   w.status, w.metadata) \
     INSERT INTO workstations (id, robot_id, data_collector_id, organization_id, factory_id, \
                               name, status, metadata) \
     OVERRIDING SYSTEM VALUE \
     SELECT next.id, COALESCE($2, old.robot_id), COALESCE($3, old.data_collector_id), \
            old.organization_id, CASE WHEN $2::bigint IS NULL THEN old.factory_id ELSE $4 END, \
            old.name, CASE WHEN $3::bigint IS NULL THEN old.status ELSE 'inactive' END, \
            old.metadata \
     FROM old, next RETURNING id";

/// Changes the current binding's name, metadata and status in place. `$5` `break` or
/// `offline` is set as sent; `active` or `inactive` re-derives from the batches, and the
/// derived status is returned for the caller to compare.
const EDIT_STATION: &str = concat!(
    "UPDATE workstations w SET name = COALESCE($2, w.name), \
         metadata = CASE WHEN $3 THEN $4 ELSE w.metadata END, \
         status = CASE WHEN $5::text IS NULL THEN w.status \
                       WHEN $5 IN ('break', 'offline') THEN $5 \
                       ELSE ",
    derived_workstation_status!(),
    " END \
     WHERE w.id = $1 AND w.is_current RETURNING ",
    derived_workstation_status!()
);

/// Changes a current binding: a new robot or collector rebinds it (the old binding is kept and
/// a new current one made), name, metadata and status change the current binding in place.
/// Answers the current binding, with its history.
///
/// # Errors
/// [`DomainError::StationNotFound`], [`DomainError::StationSuperseded`],
/// [`DomainError::StationHasOpenBatches`], the bind rules of [`create_station`] for a new robot
/// or collector, [`DomainError::CollectorOrganizationMismatch`],
/// [`DomainError::WorkstationStatusDerived`]; database failures.
#[tracing::instrument(skip_all, fields(station_id))]
pub async fn update_station(
    db: &Database,
    station_id: i64,
    request: &StationUpdateRequest,
) -> Result<StationDetailView, StoreError> {
    let mut tx = db.begin().await?;
    let before = read_binding(&mut tx, station_id, None).await?;
    before.require_current()?;
    let new_collector = request
        .data_collector_id
        .filter(|id| Some(*id) != before.data_collector_id);
    let new_robot = request.robot_id.filter(|id| Some(*id) != before.robot_id);
    let rebinding = new_collector.is_some() || new_robot.is_some();
    if let Some(collector_id) = new_collector {
        let collector = lock_bindable_collector(&mut tx, collector_id).await?;
        if collector.organization_id != Some(before.organization_id) {
            return Err(DomainError::CollectorOrganizationMismatch.into());
        }
    }
    let robot = match new_robot {
        Some(robot_id) => Some(lock_robot(&mut tx, robot_id).await?),
        None => None,
    };
    let lock = if rebinding {
        BindingLock::Ending
    } else {
        BindingLock::InPlace
    };
    read_binding(&mut tx, station_id, Some(lock))
        .await?
        .require_current()?;
    let mut current = station_id;
    if rebinding {
        refuse_open_batches(&mut tx, station_id).await?;
        refuse_bound(&mut tx, new_robot, new_collector, station_id).await?;
        current = sqlx::query_scalar(REBIND)
            .bind(station_id)
            .bind(new_robot)
            .bind(new_collector)
            .bind(robot.and_then(|r| r.factory_id))
            .persistent(named_statements())
            .fetch_one(&mut *tx)
            .await?;
        tracing::info!(station_id, rebound_as = current, "station rebound");
    }
    if request.name.is_some() || request.metadata.is_some() || request.status.is_some() {
        let derived: String = sqlx::query_scalar(EDIT_STATION)
            .bind(current)
            .bind(request.name.as_deref())
            .bind(request.metadata.is_some())
            .bind(request.metadata.clone().flatten().map(Json))
            .bind(request.status.map(WorkstationStatus::as_str))
            .persistent(named_statements())
            .fetch_one(&mut *tx)
            .await?;
        let derived: WorkstationStatus = derived.parse()?;
        if let Some(requested) = request.status
            && matches!(
                requested,
                WorkstationStatus::Active | WorkstationStatus::Inactive
            )
            && requested != derived
        {
            return Err(DomainError::WorkstationStatusDerived {
                requested,
                derived_status: derived,
            }
            .into());
        }
    }
    let view = station_detail(&mut tx, current).await?;
    tx.commit().await?;
    tracing::info!(station_id = current, "station changed");
    Ok(view)
}

/// Unbinds a current binding with no pending or active batch: it stops being current and is
/// kept, with its batches. A repeat on the binding it unbound answers it again, unchanged.
///
/// # Errors
/// [`DomainError::StationNotFound`], [`DomainError::StationSuperseded`] (it was rebound:
/// `superseded_by` names the binding to unbind), [`DomainError::StationHasOpenBatches`];
/// database failures.
#[tracing::instrument(skip_all, fields(station_id))]
pub async fn unbind_station(
    db: &Database,
    station_id: i64,
) -> Result<StationDetailView, StoreError> {
    let mut tx = db.begin().await?;
    let locked = read_binding(&mut tx, station_id, Some(BindingLock::Ending)).await?;
    if locked.is_current {
        refuse_open_batches(&mut tx, station_id).await?;
        sqlx::query(
            "UPDATE workstations SET is_current = false, superseded_at = now() \
             WHERE id = $1 AND is_current",
        )
        .bind(station_id)
        .persistent(named_statements())
        .execute(&mut *tx)
        .await?;
        tracing::info!("station unbound");
    } else if locked.superseded_by.is_some() {
        // Rebound, not unbound: the binding to unbind is the newer one.
        locked.require_current()?;
    }
    let view = station_detail(&mut tx, station_id).await?;
    tx.commit().await?;
    Ok(view)
}
