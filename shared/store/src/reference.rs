//! The dispatch forms' reference data (SPEC §5.16): stations (workstations with their current
//! binding), SOPs, scenes with their subscenes, robot types. Each list is two statements in
//! one snapshot (a page and its total), planned per call like the order list.

use chrono::{DateTime, Utc};
use keystone_domain::listing::{Page, PageRequest, like_escaped};
use keystone_domain::reference::{ReferenceFilter, StationFilter};
use keystone_domain::{Workflow, WorkstationStatus};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Database, StoreError};

/// A SOP a batch's task groups may use.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SopView {
    pub id: String,
    pub slug: String,
    pub version: String,
    pub description: Option<String>,
}

/// A subscene of a scene.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SubsceneView {
    pub id: String,
    pub name: String,
}

/// A scene with its live subscenes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SceneView {
    pub id: String,
    pub name: String,
    pub factory_id: Option<String>,
    pub subscenes: Vec<SubsceneView>,
}

/// A robot type, and the workflow its capabilities choose.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RobotTypeView {
    pub id: String,
    pub name: String,
    pub model: Option<String>,
    pub capabilities: Option<serde_json::Value>,
    pub requires_axon: bool,
    pub workflow: Workflow,
}

/// A station's robot type, as the station list carries it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StationRobotType {
    pub id: String,
    pub name: String,
    pub model: Option<String>,
    pub capabilities: Option<serde_json::Value>,
}

/// A workstation with its current robot and collector.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StationView {
    pub id: String,
    pub name: String,
    pub status: WorkstationStatus,
    pub organization_id: String,
    pub factory_id: Option<String>,
    pub robot_id: Option<String>,
    pub device_id: Option<String>,
    pub robot_type: Option<StationRobotType>,
    pub requires_axon: bool,
    pub workflow: Workflow,
    pub data_collector_id: Option<String>,
    pub collector_operator_id: Option<String>,
    pub collector_name: Option<String>,
    /// Pending and active batches on the station.
    pub open_batch_count: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct SceneRow {
    id: i64,
    name: String,
    factory_id: Option<i64>,
    subscenes: sqlx::types::Json<Vec<SubsceneView>>,
}

#[derive(sqlx::FromRow)]
struct RobotTypeRow {
    id: i64,
    name: String,
    model: Option<String>,
    capabilities: Option<serde_json::Value>,
    requires_axon: bool,
}

fn id_text(id: Option<i64>) -> Option<String> {
    id.map(|id| id.to_string())
}

fn pattern(keyword: Option<&str>) -> Option<String> {
    keyword.map(|k| format!("%{}%", like_escaped(k)))
}

/// Runs a page statement and its count in one snapshot; `$1` is the keyword pattern, `$2` an
/// id filter, then `limit` and `offset`.
async fn two_statements<R>(
    db: &Database,
    page: PageRequest,
    run: impl for<'c> AsyncFnOnce(&'c mut PgConnection) -> Result<(Vec<R>, i64), StoreError>,
) -> Result<Page<R>, StoreError> {
    let mut tx = db.begin_read_only_snapshot().await?;
    let (items, total) = run(&mut tx).await?;
    tx.commit().await?;
    Ok(Page::new(items, total, page))
}

/// Live SOPs by slug, then version.
///
/// # Errors
/// Database failures.
pub async fn list_sops(
    db: &Database,
    filter: &ReferenceFilter,
) -> Result<Page<SopView>, StoreError> {
    let like = pattern(filter.keyword.as_deref());
    two_statements(db, filter.page, async |conn| {
        let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, slug, version, description FROM sops \
             WHERE deleted_at IS NULL \
               AND ($1::text IS NULL OR lower(slug) LIKE $1 OR lower(description) LIKE $1) \
             ORDER BY slug, version, id LIMIT $2 OFFSET $3",
        )
        .bind(like.as_deref())
        .bind(filter.page.limit)
        .bind(filter.page.offset)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sops WHERE deleted_at IS NULL \
               AND ($1::text IS NULL OR lower(slug) LIKE $1 OR lower(description) LIKE $1)",
        )
        .bind(like.as_deref())
        .persistent(false)
        .fetch_one(&mut *conn)
        .await?;
        let items = rows
            .into_iter()
            .map(|(id, slug, version, description)| SopView {
                id: id.to_string(),
                slug,
                version,
                description,
            })
            .collect();
        Ok((items, total))
    })
    .await
}

/// Live scenes by name, each with its live subscenes by name.
///
/// # Errors
/// Database failures.
pub async fn list_scenes(
    db: &Database,
    filter: &ReferenceFilter,
) -> Result<Page<SceneView>, StoreError> {
    let like = pattern(filter.keyword.as_deref());
    two_statements(db, filter.page, async |conn| {
        let rows: Vec<SceneRow> = sqlx::query_as(
            "SELECT s.id, s.name, s.factory_id, \
                        COALESCE((SELECT jsonb_agg(jsonb_build_object('id', ss.id::text, \
                                                                      'name', ss.name) \
                                                   ORDER BY ss.name, ss.id) \
                                  FROM subscenes ss \
                                  WHERE ss.scene_id = s.id AND ss.deleted_at IS NULL), \
                                 '[]'::jsonb) AS subscenes \
                 FROM scenes s \
                 WHERE s.deleted_at IS NULL AND ($1::text IS NULL OR lower(s.name) LIKE $1) \
                   AND ($2::bigint IS NULL OR s.factory_id = $2) \
                 ORDER BY s.name, s.id LIMIT $3 OFFSET $4",
        )
        .bind(like.as_deref())
        .bind(filter.factory_id)
        .bind(filter.page.limit)
        .bind(filter.page.offset)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM scenes s \
             WHERE s.deleted_at IS NULL AND ($1::text IS NULL OR lower(s.name) LIKE $1) \
               AND ($2::bigint IS NULL OR s.factory_id = $2)",
        )
        .bind(like.as_deref())
        .bind(filter.factory_id)
        .persistent(false)
        .fetch_one(&mut *conn)
        .await?;
        let items = rows
            .into_iter()
            .map(|row| SceneView {
                id: row.id.to_string(),
                name: row.name,
                factory_id: id_text(row.factory_id),
                subscenes: row.subscenes.0,
            })
            .collect();
        Ok((items, total))
    })
    .await
}

/// Live robot types by name.
///
/// # Errors
/// Database failures.
pub async fn list_robot_types(
    db: &Database,
    filter: &ReferenceFilter,
) -> Result<Page<RobotTypeView>, StoreError> {
    let like = pattern(filter.keyword.as_deref());
    two_statements(db, filter.page, async |conn| {
        let rows: Vec<RobotTypeRow> = sqlx::query_as(
            "SELECT id, name, model, capabilities, \
                        keystone_requires_axon(capabilities) AS requires_axon \
                 FROM robot_types \
                 WHERE deleted_at IS NULL \
                   AND ($1::text IS NULL OR lower(name) LIKE $1 OR lower(model) LIKE $1) \
                 ORDER BY name, id LIMIT $2 OFFSET $3",
        )
        .bind(like.as_deref())
        .bind(filter.page.limit)
        .bind(filter.page.offset)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM robot_types WHERE deleted_at IS NULL \
               AND ($1::text IS NULL OR lower(name) LIKE $1 OR lower(model) LIKE $1)",
        )
        .bind(like.as_deref())
        .persistent(false)
        .fetch_one(&mut *conn)
        .await?;
        let items = rows
            .into_iter()
            .map(|row| RobotTypeView {
                id: row.id.to_string(),
                name: row.name,
                model: row.model,
                capabilities: row.capabilities,
                requires_axon: row.requires_axon,
                workflow: Workflow::from_requires_axon(row.requires_axon),
            })
            .collect();
        Ok((items, total))
    })
    .await
}

#[derive(sqlx::FromRow)]
pub(crate) struct StationRow {
    id: i64,
    name: String,
    status: String,
    organization_id: i64,
    factory_id: Option<i64>,
    robot_id: Option<i64>,
    device_id: Option<String>,
    robot_type_id: Option<i64>,
    robot_type_name: Option<String>,
    robot_type_model: Option<String>,
    capabilities: Option<serde_json::Value>,
    requires_axon: bool,
    data_collector_id: Option<i64>,
    collector_operator_id: Option<String>,
    collector_name: Option<String>,
    open_batch_count: i64,
    created_at: DateTime<Utc>,
}

/// The station filters (`$1`–`$7`). The robot type filter resolves to robots first (by their
/// robot-type index), so it is a lookup on the stations' robot index, never a pass over every
/// station.
macro_rules! station_filters {
    () => {
        "w.deleted_at IS NULL AND w.is_current \
         AND (cardinality($1::text[]) = 0 OR w.status = ANY($1)) \
         AND ($2::bigint IS NULL OR w.organization_id = $2) \
         AND ($3::bigint IS NULL OR w.factory_id = $3) \
         AND ($4::bigint IS NULL OR w.robot_id = ANY(ARRAY( \
                 SELECT rb.id FROM robots rb \
                 WHERE rb.robot_type_id = $4 AND rb.deleted_at IS NULL))) \
         AND ($5::text IS NULL OR r.device_id = $5) \
         AND ($6::text IS NULL OR dc.operator_id = $6) \
         AND ($7::text IS NULL OR lower(w.name) LIKE $7) "
    };
}

macro_rules! station_source {
    () => {
        "FROM workstations w \
         LEFT JOIN robots r ON r.id = w.robot_id AND r.deleted_at IS NULL \
         LEFT JOIN robot_types rt ON rt.id = r.robot_type_id \
         LEFT JOIN data_collectors dc ON dc.id = w.data_collector_id AND dc.deleted_at IS NULL "
    };
}

/// The columns of a [`StationRow`], from `workstations w`, `robots r`, `robot_types rt` and
/// `data_collectors dc`.
macro_rules! station_columns {
    () => {
        "w.id, w.name, w.status, w.organization_id, w.factory_id, w.robot_id, \
         r.device_id, rt.id AS robot_type_id, rt.name AS robot_type_name, \
         rt.model AS robot_type_model, rt.capabilities, \
         COALESCE(keystone_requires_axon(rt.capabilities), false) AS requires_axon, \
         dc.id AS data_collector_id, dc.operator_id AS collector_operator_id, \
         dc.name AS collector_name, \
         (SELECT count(*) FROM batches b WHERE b.workstation_id = w.id \
            AND b.status IN ('pending', 'active') AND b.deleted_at IS NULL) \
             AS open_batch_count, \
         w.created_at "
    };
}
pub(crate) use station_columns;

/// A page of stations: the filters, then `$8` limit and `$9` offset.
const LIST_STATIONS: &str = concat!(
    "SELECT ",
    station_columns!(),
    station_source!(),
    "WHERE ",
    station_filters!(),
    "ORDER BY w.created_at DESC, w.id DESC LIMIT $8 OFFSET $9"
);

/// How many stations the filters match.
const COUNT_STATIONS: &str = concat!(
    "SELECT count(*) ",
    station_source!(),
    "WHERE ",
    station_filters!()
);

/// The station list's statements by name, for the tests that check each filter's plan on a
/// large dataset.
pub const PLANNED_STATEMENTS: [(&str, &str); 2] = [
    ("list_stations", LIST_STATIONS),
    ("count_stations", COUNT_STATIONS),
];

/// Live workstations with their current robot, robot type and collector, newest first.
///
/// # Errors
/// Database failures.
pub async fn list_stations(
    db: &Database,
    filter: &StationFilter,
) -> Result<Page<StationView>, StoreError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let like = pattern(filter.keyword.as_deref());
    two_statements(db, filter.page, async |conn| {
        let rows: Vec<StationRow> = sqlx::query_as(LIST_STATIONS)
            .bind(&statuses)
            .bind(filter.organization_id)
            .bind(filter.factory_id)
            .bind(filter.robot_type_id)
            .bind(filter.device_id.as_deref())
            .bind(filter.collector_operator_id.as_deref())
            .bind(like.as_deref())
            .bind(filter.page.limit)
            .bind(filter.page.offset)
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        let total: i64 = sqlx::query_scalar(COUNT_STATIONS)
            .bind(&statuses)
            .bind(filter.organization_id)
            .bind(filter.factory_id)
            .bind(filter.robot_type_id)
            .bind(filter.device_id.as_deref())
            .bind(filter.collector_operator_id.as_deref())
            .bind(like.as_deref())
            .persistent(false)
            .fetch_one(&mut *conn)
            .await?;
        let items = rows
            .into_iter()
            .map(StationView::try_from)
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((items, total))
    })
    .await
}

impl TryFrom<StationRow> for StationView {
    type Error = StoreError;

    fn try_from(row: StationRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id.to_string(),
            name: row.name,
            status: row.status.parse()?,
            organization_id: row.organization_id.to_string(),
            factory_id: id_text(row.factory_id),
            robot_id: id_text(row.robot_id),
            device_id: row.device_id,
            robot_type: row.robot_type_id.map(|id| StationRobotType {
                id: id.to_string(),
                name: row.robot_type_name.unwrap_or_default(),
                model: row.robot_type_model,
                capabilities: row.capabilities,
            }),
            requires_axon: row.requires_axon,
            workflow: Workflow::from_requires_axon(row.requires_axon),
            data_collector_id: id_text(row.data_collector_id),
            collector_operator_id: row.collector_operator_id,
            collector_name: row.collector_name,
            open_batch_count: row.open_batch_count,
            created_at: row.created_at,
        })
    }
}
