//! Who a collector is and what the mobile page shows them (SPEC §5.5–5.7, §8). Read-only:
//! no locks, and a fixed number of statements whatever the number of batches and groups.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keystone_domain::{
    BatchStatus, CollectorSession, CollectorStanding, DomainError, HandoffPayload, OrderStatus,
    Workflow,
};
use serde::Serialize;
use sqlx::PgConnection;

use crate::database::named_statements;
use crate::{Database, StoreError};

/// What a login needs to know about an account.
#[derive(Clone, sqlx::FromRow)]
pub struct CollectorCredentials {
    pub id: i64,
    pub operator_id: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub status: String,
    pub tokens_revoked_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for CollectorCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorCredentials")
            .field("id", &self.id)
            .field("operator_id", &self.operator_id)
            .finish_non_exhaustive()
    }
}

/// The live collector whose operator id is `account`.
///
/// # Errors
/// Database failures.
pub async fn collector_credentials(
    db: &Database,
    account: &str,
) -> Result<Option<CollectorCredentials>, StoreError> {
    let mut tx = db.begin().await?;
    let credentials = sqlx::query_as(
        "SELECT id, operator_id, name, password_hash, status, tokens_revoked_at \
         FROM data_collectors \
         WHERE operator_id = $1 AND deleted_at IS NULL",
    )
    .bind(account)
    .persistent(named_statements())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(credentials)
}

/// Replaces a collector's password hash with one of the current parameters, only if it is
/// still `old` (a concurrent password change wins).
///
/// # Errors
/// Database failures.
pub async fn upgrade_password_hash(
    db: &Database,
    collector_id: i64,
    old: &str,
    new: &str,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let upgraded = sqlx::query(
        "UPDATE data_collectors SET password_hash = $3 \
         WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL",
    )
    .bind(collector_id)
    .bind(old)
    .bind(new)
    .persistent(named_statements())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(upgraded == 1)
}

/// A robot type as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RobotTypeView {
    pub id: String,
    pub name: String,
    pub model: Option<String>,
    pub capabilities: Option<serde_json::Value>,
}

/// A collector with their seat, read fresh from the database on every call.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorSeatView {
    pub collector_id: i64,
    pub operator_id: String,
    pub name: String,
    pub workstation: Option<WorkstationView>,
}

/// A collector's live workstation and its robot.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkstationView {
    pub id: String,
    pub name: String,
    pub status: keystone_domain::WorkstationStatus,
    pub robot_id: Option<String>,
    pub device_id: Option<String>,
    pub robot_type: Option<RobotTypeView>,
    pub requires_axon: bool,
    pub workflow: Workflow,
}

/// A collector's seat as one row: who, where, on which robot.
#[derive(sqlx::FromRow)]
pub(crate) struct SeatRow {
    pub(crate) collector_id: i64,
    pub(crate) collector_status: String,
    pub(crate) tokens_revoked_at: Option<DateTime<Utc>>,
    pub(crate) operator_id: String,
    pub(crate) name: String,
    pub(crate) workstation_id: Option<i64>,
    pub(crate) workstation_name: Option<String>,
    pub(crate) workstation_status: Option<String>,
    pub(crate) robot_id: Option<i64>,
    pub(crate) device_id: Option<String>,
    pub(crate) robot_type_id: Option<i64>,
    pub(crate) robot_type_name: Option<String>,
    pub(crate) robot_type_model: Option<String>,
    pub(crate) capabilities: Option<serde_json::Value>,
    pub(crate) requires_axon: bool,
}

/// The collector a session speaks for, with workstation, robot and robot type.
///
/// # Errors
/// [`DomainError::CollectorNotFound`] and [`DomainError::SessionEnded`] (SPEC §4); database
/// failures.
pub async fn collector_seat(
    db: &Database,
    session: &CollectorSession,
) -> Result<CollectorSeatView, StoreError> {
    let mut tx = db.begin().await?;
    let seat = admitted_seat(&mut tx, session).await?;
    tx.commit().await?;
    seat_view(seat)
}

/// The seat of the collector a session speaks for, read by the request's first statement,
/// which also decides whether the session still stands (SPEC §4).
///
/// # Errors
/// [`DomainError::CollectorNotFound`], [`DomainError::SessionEnded`]; database failures.
pub(crate) async fn admitted_seat(
    conn: &mut PgConnection,
    session: &CollectorSession,
) -> Result<SeatRow, StoreError> {
    admit(session, seat_row(conn, session.collector_id).await?)
}

/// The seat, when the session speaking for its collector still stands (SPEC §4).
///
/// # Errors
/// [`DomainError::CollectorNotFound`], [`DomainError::SessionEnded`].
pub(crate) fn admit(
    session: &CollectorSession,
    seat: Option<SeatRow>,
) -> Result<SeatRow, StoreError> {
    session.admit(seat.as_ref().map(SeatRow::standing).as_ref())?;
    seat.ok_or_else(|| DomainError::CollectorNotFound.into())
}

impl SeatRow {
    fn standing(&self) -> CollectorStanding {
        CollectorStanding {
            status: self.collector_status.clone(),
            tokens_revoked_at: self.tokens_revoked_at,
        }
    }
}

/// The [`SeatRow`] of the live collector whose id is parameter `$collector` (its current
/// workstation, robot and robot type), with `$extra` columns after the seat's own.
macro_rules! seat_sql {
    ($extra:literal, $collector:literal) => {
        concat!(
            "SELECT dc.id AS collector_id, dc.status AS collector_status, dc.tokens_revoked_at, \
                    dc.operator_id, dc.name, \
                    w.id AS workstation_id, w.name AS workstation_name, \
                    w.status AS workstation_status, r.id AS robot_id, r.device_id, \
                    rt.id AS robot_type_id, rt.name AS robot_type_name, \
                    rt.model AS robot_type_model, rt.capabilities, \
                    keystone_requires_axon(rt.capabilities) AS requires_axon",
            $extra,
            " FROM data_collectors dc \
             LEFT JOIN workstations w ON w.data_collector_id = dc.id AND w.deleted_at IS NULL \
                                       AND w.is_current \
             LEFT JOIN robots r ON r.id = w.robot_id AND r.deleted_at IS NULL \
             LEFT JOIN robot_types rt ON rt.id = r.robot_type_id AND rt.deleted_at IS NULL \
             WHERE dc.deleted_at IS NULL AND dc.id = ",
            $collector
        )
    };
}
pub(crate) use seat_sql;

async fn seat_row(
    conn: &mut PgConnection,
    collector_id: i64,
) -> Result<Option<SeatRow>, StoreError> {
    Ok(sqlx::query_as(seat_sql!("", "$1"))
        .bind(collector_id)
        .persistent(named_statements())
        .fetch_optional(&mut *conn)
        .await?)
}

fn seat_view(row: SeatRow) -> Result<CollectorSeatView, StoreError> {
    let robot_type = row.robot_type_id.map(|id| RobotTypeView {
        id: id.to_string(),
        name: row.robot_type_name.clone().unwrap_or_default(),
        model: row.robot_type_model.clone(),
        capabilities: row.capabilities.clone(),
    });
    let workstation = match row.workstation_id {
        None => None,
        Some(id) => Some(WorkstationView {
            id: id.to_string(),
            name: row.workstation_name.clone().unwrap_or_default(),
            status: row
                .workstation_status
                .as_deref()
                .unwrap_or_default()
                .parse()?,
            robot_id: row.robot_id.map(|r| r.to_string()),
            device_id: row.device_id.clone(),
            robot_type,
            requires_axon: row.requires_axon,
            workflow: Workflow::from_requires_axon(row.requires_axon),
        }),
    };
    Ok(CollectorSeatView {
        collector_id: row.collector_id,
        operator_id: row.operator_id,
        name: row.name,
        workstation,
    })
}

/// The 200 body of `GET /api/v1/me/batches`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MyBatchesResponse {
    pub collector: CollectorSummary,
    pub workstation: Option<WorkstationView>,
    pub batches: Vec<MyBatch>,
    /// The server's clock when the answer was read: `reopenable_until` minus this is how long
    /// the undo button has, whatever the phone's own clock says.
    pub server_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CollectorSummary {
    pub id: String,
    pub operator_id: String,
    pub name: String,
}

/// An open batch (or one completed within the reopen window, whose last completions can still
/// be undone) with its progress and task groups.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MyBatch {
    pub id: String,
    pub batch_id: String,
    pub name: String,
    pub notes: Option<String>,
    pub status: BatchStatus,
    pub order_id: String,
    pub order_name: String,
    /// The order's status: a paused order's batches take no automatic completion of the order.
    pub order_status: OrderStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub task_count: i64,
    pub completed_count: i64,
    pub pending_count: i64,
    pub failed_count: i64,
    pub cancelled_count: i64,
    pub task_groups: Vec<MyTaskGroup>,
}

/// One task group of a batch, with the payload the collector copies into the device.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MyTaskGroup {
    pub sop_id: String,
    pub subscene_id: String,
    pub sop_slug: String,
    pub sop_version: String,
    pub scene_name: String,
    pub subscene_name: String,
    pub task_count: i64,
    pub pending_count: i64,
    pub ready_count: i64,
    pub in_progress_count: i64,
    pub completed_count: i64,
    /// Completions the caller may still undo (reopen): completed within the last 15 minutes,
    /// without an episode, in a batch and order that allow it.
    pub reopenable_count: i64,
    /// When the oldest of those leaves the 15-minute window (the count drops by one then);
    /// null when there is none.
    pub reopenable_until: Option<DateTime<Utc>>,
    /// The handoff payload ([`HANDOFF_PAYLOAD_RULE`]).
    #[schema(schema_with = handoff_payload_schema)]
    pub handoff_payload: String,
}

/// What the API document says of the handoff payload.
const HANDOFF_PAYLOAD_RULE: &str = "The handoff payload the collector copies into the external \
    device's program: one line of compact JSON with exactly the keys `sop_slug`, `sop_version`, \
    `scene_name`, `subscene_name`, `collector_name`, `collector_operator_id`, `device_id` and \
    `device_type` (the robot type's name), in that order; every value is a string, empty when \
    unknown; non-ASCII text is UTF-8 without `\\u` escapes; no whitespace between tokens.";

/// A string holding JSON, whose content is the `HandoffPayload` schema (OpenAPI 3.1
/// `contentMediaType` and `contentSchema`), so a client can decode it typed.
fn handoff_payload_schema() -> utoipa::openapi::Object {
    use utoipa::ToSchema;
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(HANDOFF_PAYLOAD_RULE))
        .content_media_type("application/json")
        .content_schema(Some(utoipa::openapi::Ref::from_schema_name(
            keystone_domain::HandoffPayload::name(),
        )))
        .examples([serde_json::json!(
            r#"{"sop_slug":"move_bottle","sop_version":"v1","scene_name":"厨房","subscene_name":"台面","collector_name":"张三","collector_operator_id":"DC001","device_id":"robot_dc86","device_type":"SynGloves"}"#
        )])
        .build()
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: i64,
    batch_id: String,
    name: String,
    notes: Option<String>,
    status: String,
    order_id: i64,
    order_name: String,
    order_status: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    task_count: i64,
    completed_count: i64,
    pending_count: i64,
    failed_count: i64,
    cancelled_count: i64,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    batch_id: i64,
    sop_id: i64,
    subscene_id: i64,
    sop_slug: String,
    sop_version: String,
    scene_name: String,
    subscene_name: String,
    task_count: i64,
    pending_count: i64,
    ready_count: i64,
    in_progress_count: i64,
    completed_count: i64,
    reopenable_count: i64,
    oldest_reopenable: Option<DateTime<Utc>>,
}

/// The batches the phone shows (`b`, joined to its order `o`; `$1` the workstation, `$2` the
/// reopen window in milliseconds): pending and active ones, and completed ones that ended
/// within the window in an order that still takes reopening — their last completions can
/// still be undone, which a reload must not hide.
macro_rules! phone_batches {
    () => {
        "b.workstation_id = $1 AND b.deleted_at IS NULL \
         AND (b.status IN ('pending', 'active') \
              OR (b.status = 'completed' AND o.status NOT IN ('completed', 'cancelled') \
                  AND b.ended_at >= now() - $2 * interval '1 millisecond'))"
    };
}

/// Everything the mobile page needs (SPEC §5.7, §5.19) in four statements, read from one
/// consistent snapshot.
///
/// # Errors
/// [`DomainError::CollectorNotFound`] and [`DomainError::SessionEnded`] (SPEC §4); database
/// failures, and an unknown batch status.
#[tracing::instrument(skip_all, fields(collector_id = session.collector_id))]
pub async fn my_batches(
    db: &Database,
    session: &CollectorSession,
) -> Result<MyBatchesResponse, StoreError> {
    let window_ms =
        i64::try_from(keystone_domain::COLLECTOR_REOPEN_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let window = chrono::Duration::milliseconds(window_ms);
    let mut tx = db.begin_read_only_snapshot().await?;
    let seat = seat_view(admitted_seat(&mut tx, session).await?)?;
    // The transaction's own time: the window above is measured from it too.
    let server_time: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .persistent(named_statements())
        .fetch_one(&mut *tx)
        .await?;
    let workstation_id = seat
        .workstation
        .as_ref()
        .and_then(|w| w.id.parse::<i64>().ok());
    let (batches, groups): (Vec<BatchRow>, Vec<GroupRow>) = match workstation_id {
        None => (Vec::new(), Vec::new()),
        Some(workstation_id) => {
            let batches = sqlx::query_as(concat!(
                "SELECT b.id, b.batch_id, b.name, b.notes, b.status, b.order_id, \
                        o.name AS order_name, o.status AS order_status, b.created_at, \
                        b.started_at, b.task_count, b.completed_count, b.pending_count, \
                        b.failed_count, b.cancelled_count \
                 FROM batches b \
                 JOIN orders o ON o.id = b.order_id AND o.deleted_at IS NULL \
                 WHERE ",
                phone_batches!(),
                " ORDER BY b.created_at DESC, b.id DESC"
            ))
            .bind(workstation_id)
            .bind(window_ms)
            .persistent(named_statements())
            .fetch_all(&mut *tx)
            .await?;
            let groups = sqlx::query_as(
                // Counts from the group counters; names from any live task of the group.
                concat!(
                    "SELECT g.batch_id, g.sop_id, g.subscene_id, \
                            COALESCE(s.slug, '') AS sop_slug, \
                            COALESCE(s.version, '') AS sop_version, \
                            COALESCE(n.scene_name, '') AS scene_name, \
                            COALESCE(n.subscene_name, '') AS subscene_name, \
                            g.task_count, g.pending_count, g.ready_count, g.in_progress_count, \
                            g.completed_count, COALESCE(r.reopenable_count, 0) AS reopenable_count, \
                            r.oldest_reopenable \
                     FROM ( \
                         SELECT c.batch_id, c.sop_id, c.subscene_id, \
                                bool_or(o.status NOT IN ('completed', 'cancelled')) AS undoable, \
                                sum(c.task_count)::bigint AS task_count, \
                                COALESCE(sum(c.task_count) FILTER (WHERE c.status = 'pending'), 0)::bigint \
                                    AS pending_count, \
                                COALESCE(sum(c.task_count) FILTER (WHERE c.status = 'ready'), 0)::bigint \
                                    AS ready_count, \
                                COALESCE(sum(c.task_count) FILTER (WHERE c.status = 'in_progress'), 0)::bigint \
                                    AS in_progress_count, \
                                COALESCE(sum(c.task_count) FILTER (WHERE c.status = 'completed'), 0)::bigint \
                                    AS completed_count \
                         FROM task_group_counts c \
                         JOIN batches b ON b.id = c.batch_id \
                         JOIN orders o ON o.id = b.order_id AND o.deleted_at IS NULL \
                         WHERE ",
                    phone_batches!(),
                    " GROUP BY c.batch_id, c.sop_id, c.subscene_id \
                         HAVING sum(c.task_count) > 0) g \
                     LEFT JOIN sops s ON s.id = g.sop_id AND s.deleted_at IS NULL \
                     LEFT JOIN LATERAL ( \
                         SELECT t.scene_name, t.subscene_name FROM tasks t \
                         WHERE t.batch_id = g.batch_id AND t.sop_id = g.sop_id \
                           AND t.subscene_id = g.subscene_id AND t.deleted_at IS NULL \
                         LIMIT 1) n ON true \
                     LEFT JOIN LATERAL ( \
                         SELECT count(*) AS reopenable_count, \
                                min(t.completed_at) AS oldest_reopenable \
                         FROM tasks t \
                         WHERE g.undoable AND t.batch_id = g.batch_id AND t.sop_id = g.sop_id \
                           AND t.subscene_id = g.subscene_id AND t.status = 'completed' \
                           AND t.deleted_at IS NULL AND t.episode_id IS NULL \
                           AND t.completed_at >= now() - $2 * interval '1 millisecond') r ON true \
                     ORDER BY g.batch_id, g.sop_id, g.subscene_id"
                ),
            )
            .bind(workstation_id)
            .bind(window_ms)
            .persistent(named_statements())
            .fetch_all(&mut *tx)
            .await?;
            (batches, groups)
        }
    };
    tx.commit().await?;

    let workstation = seat.workstation;
    let device_id = workstation
        .as_ref()
        .and_then(|w| w.device_id.clone())
        .unwrap_or_default();
    let device_type = workstation
        .as_ref()
        .and_then(|w| w.robot_type.as_ref())
        .map(|t| t.name.clone())
        .unwrap_or_default();
    let mut groups_by_batch: HashMap<i64, Vec<MyTaskGroup>> = HashMap::new();
    for group in groups {
        let payload = HandoffPayload {
            sop_slug: group.sop_slug.clone(),
            sop_version: group.sop_version.clone(),
            scene_name: group.scene_name.clone(),
            subscene_name: group.subscene_name.clone(),
            collector_name: seat.name.clone(),
            collector_operator_id: seat.operator_id.clone(),
            device_id: device_id.clone(),
            device_type: device_type.clone(),
        };
        groups_by_batch
            .entry(group.batch_id)
            .or_default()
            .push(MyTaskGroup {
                sop_id: group.sop_id.to_string(),
                subscene_id: group.subscene_id.to_string(),
                sop_slug: group.sop_slug,
                sop_version: group.sop_version,
                scene_name: group.scene_name,
                subscene_name: group.subscene_name,
                task_count: group.task_count,
                pending_count: group.pending_count,
                ready_count: group.ready_count,
                in_progress_count: group.in_progress_count,
                completed_count: group.completed_count,
                reopenable_count: group.reopenable_count,
                reopenable_until: group.oldest_reopenable.map(|oldest| oldest + window),
                handoff_payload: payload.to_json_line(),
            });
    }
    let batches = batches
        .into_iter()
        .map(|b| {
            Ok(MyBatch {
                task_groups: groups_by_batch.remove(&b.id).unwrap_or_default(),
                id: b.id.to_string(),
                batch_id: b.batch_id,
                name: b.name,
                notes: b.notes,
                status: b.status.parse()?,
                order_id: b.order_id.to_string(),
                order_name: b.order_name,
                order_status: b.order_status.parse()?,
                created_at: b.created_at,
                started_at: b.started_at,
                task_count: b.task_count,
                completed_count: b.completed_count,
                pending_count: b.pending_count,
                failed_count: b.failed_count,
                cancelled_count: b.cancelled_count,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(MyBatchesResponse {
        collector: CollectorSummary {
            id: seat.collector_id.to_string(),
            operator_id: seat.operator_id,
            name: seat.name,
        },
        workstation,
        batches,
        server_time,
    })
}
