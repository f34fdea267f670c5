//! The admin console's orders (SPEC §5.14): create, list, delete. The order view itself lives
//! with the progress views (`progress::OrderProgress`).

use keystone_domain::listing::{Page, like_escaped};
use keystone_domain::orders::{CreateOrderRequest, OrderListFilter};
use keystone_domain::{DomainError, IdempotencyKey};

use sqlx::{FromRow, Row};

use crate::database::named_statements;
use crate::idempotency::{self, Claim, KeyOwner};
use crate::progress::{
    OrderProgress, OrderRow, order_view_from, order_view_select, read_order_progress,
};
use crate::{Database, StoreError, StoredResponse};

/// Creates an order in status `created` and answers 201 with its view. With an
/// `Idempotency-Key`, a repeat of the same request answers the first 201 and creates nothing.
/// Four statements (five with a key), whatever the request.
///
/// # Errors
/// [`DomainError::UnknownOrganization`], [`DomainError::UnknownScene`],
/// [`DomainError::OrderNameTaken`] (a live order of the organization has the name),
/// [`DomainError::IdempotencyKeyReused`]; database failures.
pub async fn create_order(
    db: &Database,
    admin_operator_id: &str,
    request: &CreateOrderRequest,
    idempotency_key: Option<&IdempotencyKey>,
) -> Result<StoredResponse, StoreError> {
    let mut tx = db.begin().await?;
    let owner = KeyOwner::Admin(admin_operator_id.to_owned());
    if let Some(key) = idempotency_key
        && let Claim::Replay(stored) =
            idempotency::claim(&mut tx, &owner, key, &request.fingerprint()).await?
    {
        return Ok(stored);
    }
    let (organization, scene): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT id FROM organizations WHERE id = $1 AND deleted_at IS NULL), \
                (SELECT id FROM scenes WHERE id = $2 AND deleted_at IS NULL)",
    )
    .bind(request.organization_id)
    .bind(request.scene_id)
    .persistent(named_statements())
    .fetch_one(&mut *tx)
    .await?;
    if organization.is_none() {
        return Err(DomainError::UnknownOrganization.into());
    }
    if scene.is_none() {
        return Err(DomainError::UnknownScene.into());
    }
    // The live-name index decides a race between two creates of the same name.
    let created: Option<i64> = sqlx::query_scalar(
        "INSERT INTO orders \
             (organization_id, scene_id, name, target_count, priority, deadline, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (organization_id, name) WHERE deleted_at IS NULL DO NOTHING \
         RETURNING id",
    )
    .bind(request.organization_id)
    .bind(request.scene_id)
    .bind(&request.name)
    .bind(request.target_count)
    .bind(request.priority.as_str())
    .bind(request.deadline)
    .bind(sqlx::types::Json(&request.metadata))
    .persistent(named_statements())
    .fetch_optional(&mut *tx)
    .await?;
    let order_id = created.ok_or(DomainError::OrderNameTaken)?;
    let view = read_order_progress(&mut tx, order_id)
        .await?
        .ok_or_else(|| StoreError::Invariant(format!("order {order_id} vanished")))?;
    let body = serde_json::to_string(&view)
        .map_err(|e| StoreError::Invariant(format!("order view: {e}")))?;
    if let Some(key) = idempotency_key {
        idempotency::store_response(&mut tx, &owner, key, 201, &body).await?;
    }
    tx.commit().await?;
    tracing::info!(order_id, "order created");
    Ok(StoredResponse {
        status: 201,
        body,
        replayed: false,
        outbox_ids: Vec::new(),
    })
}

/// The equality filters of the order list (`$1`–`$4`). Planned for each call's values
/// (unnamed statements), so an absent filter costs nothing and a present one uses its index.
macro_rules! order_filters {
    () => {
        "o.deleted_at IS NULL \
         AND (cardinality($1::text[]) = 0 OR o.status = ANY($1)) \
         AND (cardinality($2::text[]) = 0 OR o.priority = ANY($2)) \
         AND ($3::bigint IS NULL OR o.organization_id = $3) \
         AND ($4::bigint IS NULL OR o.scene_id = $4) "
    };
}

/// The orders a keyword (`$5`, a `LIKE` pattern) matches, as order rows aliased `o`: three
/// index lookups — the orders' names by trigram, and the orders of matching scenes and
/// organizations by their indexes — then one row per order. The matches are the row source,
/// so nothing reads orders the keyword does not match; an `OR` of the three conditions is
/// served by no index and read every order.
macro_rules! keyword_matches {
    () => {
        "(SELECT DISTINCT ON (m.id) m.* FROM ( \
             SELECT m.* FROM orders m \
             WHERE lower(m.name) LIKE $5 AND m.deleted_at IS NULL \
             UNION ALL \
             SELECT m.* FROM scenes sn JOIN orders m ON m.scene_id = sn.id \
             WHERE lower(sn.name) LIKE $5 AND m.deleted_at IS NULL \
             UNION ALL \
             SELECT m.* FROM organizations og JOIN orders m ON m.organization_id = og.id \
             WHERE lower(og.name) LIKE $5 AND m.deleted_at IS NULL) m \
         ORDER BY m.id) o"
    };
}

const LIST_ORDERS: &str = order_view_select!(
    "WHERE ",
    order_filters!(),
    "ORDER BY o.created_at DESC, o.id DESC LIMIT $5 OFFSET $6"
);

/// Exact names (`$6`, lower-cased) first, then names starting with the keyword (`$7`), then
/// the rest.
const LIST_MATCHING_ORDERS: &str = order_view_from!(
    keyword_matches!(),
    "WHERE ",
    order_filters!(),
    "ORDER BY CASE WHEN lower(o.name) = $6 THEN 0 WHEN lower(o.name) LIKE $7 THEN 1 ELSE 2 END, \
              o.created_at DESC, o.id DESC \
     LIMIT $8 OFFSET $9"
);

const COUNT_ORDERS: &str = concat!("SELECT count(*) FROM orders o WHERE ", order_filters!());

const COUNT_MATCHING_ORDERS: &str = concat!(
    "SELECT count(*) FROM ",
    keyword_matches!(),
    " WHERE ",
    order_filters!()
);

/// The statements whose plans the list tests check on a large table.
pub const PLANNED_STATEMENTS: [(&str, &str); 4] = [
    ("list_orders", LIST_ORDERS),
    ("count_orders", COUNT_ORDERS),
    ("list_matching_orders", LIST_MATCHING_ORDERS),
    ("count_matching_orders", COUNT_MATCHING_ORDERS),
];

/// A page of orders, newest first (keyword matches: exact names, then prefixes, then the
/// rest), with the total the filters match. Two statements in one snapshot, whatever the sizes.
///
/// # Errors
/// Database failures.
pub async fn list_orders(
    db: &Database,
    filter: &OrderListFilter,
) -> Result<Page<OrderProgress>, StoreError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let priorities: Vec<&str> = filter.priorities.iter().map(|p| p.as_str()).collect();
    let filtered = |sql: &'static str| {
        sqlx::query(sql)
            .bind(statuses.clone())
            .bind(priorities.clone())
            .bind(filter.organization_id)
            .bind(filter.scene_id)
            .persistent(false)
    };
    let mut tx = db.begin_read_only_snapshot().await?;
    let (rows, total) = match filter.keyword.as_deref() {
        None => {
            let rows = filtered(LIST_ORDERS)
                .bind(filter.page.limit)
                .bind(filter.page.offset)
                .try_map(|row| OrderRow::from_row(&row))
                .fetch_all(&mut *tx)
                .await?;
            let total: i64 = filtered(COUNT_ORDERS)
                .try_map(|row| row.try_get(0))
                .fetch_one(&mut *tx)
                .await?;
            (rows, total)
        }
        Some(keyword) => {
            let anywhere = format!("%{}%", like_escaped(keyword));
            let prefix = format!("{}%", like_escaped(keyword));
            let rows = filtered(LIST_MATCHING_ORDERS)
                .bind(anywhere.clone())
                .bind(keyword.to_owned())
                .bind(prefix)
                .bind(filter.page.limit)
                .bind(filter.page.offset)
                .try_map(|row| OrderRow::from_row(&row))
                .fetch_all(&mut *tx)
                .await?;
            let total: i64 = filtered(COUNT_MATCHING_ORDERS)
                .bind(anywhere)
                .try_map(|row| row.try_get(0))
                .fetch_one(&mut *tx)
                .await?;
            (rows, total)
        }
    };
    tx.commit().await?;
    let items = rows
        .into_iter()
        .map(OrderProgress::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::new(items, total, filter.page))
}

/// Soft-deletes an order that has no live batch (and so no live task). One statement, which
/// locks the order row (SPEC §6: the order first) and answers what blocked it.
///
/// # Errors
/// [`DomainError::OrderNotFound`], [`DomainError::OrderHasBatches`]; database failures.
pub async fn delete_order(db: &Database, order_id: i64) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let found: Option<(i64, bool)> = sqlx::query_as(
        "WITH target AS ( \
             SELECT o.id, (SELECT count(*) FROM batches b \
                           WHERE b.order_id = o.id AND b.deleted_at IS NULL) AS batch_count \
             FROM orders o WHERE o.id = $1 AND o.deleted_at IS NULL FOR UPDATE OF o), \
         deleted AS ( \
             UPDATE orders o SET deleted_at = now() FROM target \
             WHERE o.id = target.id AND target.batch_count = 0 AND o.task_count = 0 \
             RETURNING o.id) \
         SELECT target.batch_count, EXISTS (SELECT 1 FROM deleted) FROM target",
    )
    .bind(order_id)
    .persistent(named_statements())
    .fetch_optional(&mut *tx)
    .await?;
    match found {
        None => Err(DomainError::OrderNotFound.into()),
        Some((_, true)) => {
            tx.commit().await?;
            tracing::info!(order_id, "order deleted");
            Ok(())
        }
        Some((batch_count, false)) => Err(DomainError::OrderHasBatches {
            batch_count: batch_count.max(1),
        }
        .into()),
    }
}
