//! The admin's collectors (SPEC §5.17): list, create, read, change and delete. Each call runs a
//! fixed number of statements and locks at most the collector's own row.

use chrono::{DateTime, Utc};
use keystone_domain::collectors::{
    CollectorFilter, CollectorUpdateRequest, CreateCollectorRequest,
};
use keystone_domain::listing::{Page, like_escaped};
use keystone_domain::{CollectorStatus, DomainError};
use serde::Serialize;
use sqlx::types::Json;

use crate::database::named_statements;
use crate::sessions::revocation_time;
use crate::{Database, StoreError};

/// A collector as the admin console shows it: never a password or its hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CollectorView {
    pub id: String,
    /// Null for a collector carried over from Keystone without one.
    pub organization_id: Option<String>,
    pub name: String,
    pub operator_id: String,
    pub email: Option<String>,
    pub status: CollectorStatus,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct CollectorRow {
    id: i64,
    organization_id: Option<i64>,
    name: String,
    operator_id: String,
    email: Option<String>,
    status: String,
    metadata: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<CollectorRow> for CollectorView {
    type Error = StoreError;

    fn try_from(row: CollectorRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id.to_string(),
            organization_id: row.organization_id.map(|id| id.to_string()),
            name: row.name,
            operator_id: row.operator_id,
            email: row.email,
            status: row.status.parse()?,
            metadata: row.metadata,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The view's columns of `data_collectors dc`.
macro_rules! collector_columns {
    () => {
        "dc.id, dc.organization_id, dc.name, dc.operator_id, dc.email, dc.status, \
         COALESCE(dc.metadata, '{}'::jsonb) AS metadata, dc.created_at, dc.updated_at"
    };
}

/// The list filters (`$1` statuses, `$2` organization, `$3` keyword pattern). The keyword's
/// matches are found first, each name through its own trigram index: an `OR` of the two
/// `LIKE`s is served by no index and, as a filter, reads every collector.
macro_rules! collector_filters {
    () => {
        "dc.deleted_at IS NULL \
         AND (cardinality($1::text[]) = 0 OR dc.status = ANY($1)) \
         AND ($2::bigint IS NULL OR dc.organization_id = $2) \
         AND ($3::text IS NULL OR dc.id = ANY(ARRAY( \
                 SELECT m.id FROM data_collectors m \
                 WHERE m.deleted_at IS NULL AND lower(m.name) LIKE $3 \
                 UNION \
                 SELECT m.id FROM data_collectors m \
                 WHERE m.deleted_at IS NULL AND lower(m.operator_id) LIKE $3))) "
    };
}

const LIST_COLLECTORS: &str = concat!(
    "SELECT ",
    collector_columns!(),
    " FROM data_collectors dc WHERE ",
    collector_filters!(),
    "ORDER BY dc.created_at DESC, dc.id DESC LIMIT $4 OFFSET $5"
);

const COUNT_COLLECTORS: &str = concat!(
    "SELECT count(*) FROM data_collectors dc WHERE ",
    collector_filters!()
);

/// The collector list's statements by name, for the test that checks each filter's plan on a
/// large table.
pub const PLANNED_STATEMENTS: [(&str, &str); 2] = [
    ("list_collectors", LIST_COLLECTORS),
    ("count_collectors", COUNT_COLLECTORS),
];

/// Live collectors, newest first (then id), with the total the filters match. Two statements
/// in one snapshot, planned per call.
///
/// # Errors
/// Database failures.
pub async fn list_collectors(
    db: &Database,
    filter: &CollectorFilter,
) -> Result<Page<CollectorView>, StoreError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let like = filter
        .keyword
        .as_deref()
        .map(|k| format!("%{}%", like_escaped(k)));
    let mut tx = db.begin_read_only_snapshot().await?;
    let rows: Vec<CollectorRow> = sqlx::query_as(LIST_COLLECTORS)
        .bind(&statuses)
        .bind(filter.organization_id)
        .bind(like.as_deref())
        .bind(filter.page.limit)
        .bind(filter.page.offset)
        .persistent(false)
        .fetch_all(&mut *tx)
        .await?;
    let total: i64 = sqlx::query_scalar(COUNT_COLLECTORS)
        .bind(&statuses)
        .bind(filter.organization_id)
        .bind(like.as_deref())
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let items = rows
        .into_iter()
        .map(CollectorView::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::new(items, total, filter.page))
}

/// Creates a collector with an argon2id `password_hash` the caller made. One statement: the
/// organization must be live, and an operator id taken by a live collector inserts nothing.
///
/// # Errors
/// [`DomainError::UnknownOrganization`], [`DomainError::OperatorIdTaken`]; database
/// failures.
#[tracing::instrument(skip_all, fields(operator_id = %request.operator_id))]
pub async fn create_collector(
    db: &Database,
    request: &CreateCollectorRequest,
    password_hash: &str,
) -> Result<CollectorView, StoreError> {
    let mut tx = db.begin().await?;
    let (organization_known, row): (bool, Option<Json<CollectorRow>>) = sqlx::query_as(concat!(
        "WITH org AS (SELECT id FROM organizations WHERE id = $1 AND deleted_at IS NULL), \
         made AS ( \
             INSERT INTO data_collectors AS dc \
                 (organization_id, name, operator_id, password_hash, email, status, metadata) \
             SELECT org.id, $2, $3, $4, $5, $6, $7 FROM org \
             ON CONFLICT (operator_id) WHERE deleted_at IS NULL DO NOTHING \
             RETURNING ",
        collector_columns!(),
        ") SELECT EXISTS (SELECT 1 FROM org), (SELECT to_jsonb(made) FROM made)"
    ))
    .bind(request.organization_id)
    .bind(&request.name)
    .bind(&request.operator_id)
    .bind(password_hash)
    .bind(request.email.as_deref())
    .bind(request.status.as_str())
    .bind(Json(&request.metadata))
    .persistent(named_statements())
    .fetch_one(&mut *tx)
    .await?;
    let row = match (organization_known, row) {
        (false, _) => return Err(DomainError::UnknownOrganization.into()),
        (true, None) => return Err(DomainError::OperatorIdTaken.into()),
        (true, Some(Json(row))) => row,
    };
    tx.commit().await?;
    tracing::info!(collector_id = row.id, "collector created");
    row.try_into()
}

/// One live collector.
///
/// # Errors
/// [`DomainError::DataCollectorNotFound`]; database failures.
pub async fn get_collector(db: &Database, collector_id: i64) -> Result<CollectorView, StoreError> {
    let row: Option<CollectorRow> = sqlx::query_as(concat!(
        "SELECT ",
        collector_columns!(),
        " FROM data_collectors dc WHERE dc.id = $1 AND dc.deleted_at IS NULL"
    ))
    .bind(collector_id)
    .persistent(named_statements())
    .fetch_optional(db.pool())
    .await?;
    row.ok_or(DomainError::DataCollectorNotFound)?.try_into()
}

/// Changes the fields the request names, with a new argon2id hash the caller made for a new
/// password. A status other than `active` or a new password ends every token of the collector
/// (its revocation time moves, SPEC §4) in the same statement. One UPDATE of the collector's
/// row.
///
/// # Errors
/// [`DomainError::DataCollectorNotFound`]; database failures.
#[tracing::instrument(skip_all, fields(collector_id, revokes = request.revokes_tokens()))]
pub async fn update_collector(
    db: &Database,
    collector_id: i64,
    request: &CollectorUpdateRequest,
    new_password_hash: Option<&str>,
) -> Result<CollectorView, StoreError> {
    let mut tx = db.begin().await?;
    let row: Option<CollectorRow> = sqlx::query_as(concat!(
        "UPDATE data_collectors dc SET name = COALESCE($2, dc.name), \
             email = CASE WHEN $3 THEN $4 ELSE dc.email END, \
             status = COALESCE($5, dc.status), \
             metadata = COALESCE($6, dc.metadata), \
             password_hash = COALESCE($7, dc.password_hash), \
             tokens_revoked_at = CASE WHEN $8 THEN ",
        revocation_time!(),
        " ELSE dc.tokens_revoked_at END \
         WHERE dc.id = $1 AND dc.deleted_at IS NULL RETURNING ",
        collector_columns!()
    ))
    .bind(collector_id)
    .bind(request.name.as_deref())
    .bind(request.email.is_some())
    .bind(request.email.clone().flatten())
    .bind(request.status.map(CollectorStatus::as_str))
    .bind(request.metadata.as_ref().map(Json))
    .bind(new_password_hash)
    .bind(request.revokes_tokens())
    .persistent(named_statements())
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or(DomainError::DataCollectorNotFound)?;
    tx.commit().await?;
    tracing::info!("collector updated");
    row.try_into()
}

/// Soft-deletes a collector that has no current workstation binding and ends its tokens.
/// The collector's row is locked first, in a statement of its own, so the check that follows
/// sees every binding committed meanwhile: a bind locks the same row before it inserts.
///
/// # Errors
/// [`DomainError::DataCollectorNotFound`]; [`DomainError::CollectorHasStation`]; database
/// failures.
#[tracing::instrument(skip_all, fields(collector_id))]
pub async fn delete_collector(db: &Database, collector_id: i64) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let locked: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM data_collectors WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(collector_id)
    .persistent(named_statements())
    .fetch_optional(&mut *tx)
    .await?;
    if locked.is_none() {
        return Err(DomainError::DataCollectorNotFound.into());
    }
    let seat: Option<i64> = sqlx::query_scalar(concat!(
        "WITH seat AS ( \
             SELECT w.id FROM workstations w \
             WHERE w.data_collector_id = $1 AND w.deleted_at IS NULL AND w.is_current), \
         gone AS ( \
             UPDATE data_collectors SET deleted_at = now(), tokens_revoked_at = ",
        revocation_time!(),
        " WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM seat) RETURNING id) \
         SELECT (SELECT min(id) FROM seat)"
    ))
    .bind(collector_id)
    .persistent(named_statements())
    .fetch_one(&mut *tx)
    .await?;
    if let Some(workstation) = seat {
        return Err(DomainError::CollectorHasStation {
            workstation_id: workstation.to_string(),
        }
        .into());
    }
    tx.commit().await?;
    tracing::info!("collector deleted");
    Ok(())
}
