//! Idempotency-key persistence (SPEC §6.1).
//!
//! The key row is inserted first thing in the request's transaction. A concurrent repeat's
//! INSERT then blocks on the unique index until the first request ends: if it committed, the
//! repeat finds the stored response; if it rolled back, the repeat's INSERT goes through and
//! it runs as a new request. Only successful responses are ever committed.

use keystone_domain::{DomainError, IdempotencyKey};
use sqlx::PgConnection;

use crate::database::named_statements;
use crate::{StoreError, StoredResponse};

/// Whose keys a key lives among: a collector's (SPEC §6.1), or an admin's (reopen, §5.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    Collector(i64),
    Admin(String),
}

impl KeyOwner {
    /// The `(collector_id, admin_operator_id)` pair stored on the key row.
    fn columns(&self) -> (Option<i64>, Option<&str>) {
        match self {
            Self::Collector(id) => (Some(*id), None),
            Self::Admin(operator_id) => (None, Some(operator_id)),
        }
    }
}

/// Each owner kind has its own unique index, so the conflict target differs.
const CLAIM_COLLECTOR_SQL: &str = "INSERT INTO idempotency_keys \
        (collector_id, admin_operator_id, idempotency_key, request_fingerprint) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (collector_id, idempotency_key) DO NOTHING RETURNING id";
const CLAIM_ADMIN_SQL: &str = "INSERT INTO idempotency_keys \
        (collector_id, admin_operator_id, idempotency_key, request_fingerprint) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (admin_operator_id, idempotency_key) WHERE collector_id IS NULL DO NOTHING \
     RETURNING id";

/// The outcome of claiming a key.
pub(crate) enum Claim {
    /// This request owns the key; it must store its response before committing.
    Fresh,
    /// A committed request already answered under this key.
    Replay(StoredResponse),
}

/// Claims `key` for its owner, or finds the response stored under it.
///
/// # Errors
/// [`DomainError::IdempotencyKeyReused`] when the stored request differs.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    owner: &KeyOwner,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> Result<Claim, StoreError> {
    let (collector_id, admin_operator_id) = owner.columns();
    let sql = match owner {
        KeyOwner::Collector(_) => CLAIM_COLLECTOR_SQL,
        KeyOwner::Admin(_) => CLAIM_ADMIN_SQL,
    };
    let inserted: Option<i64> = sqlx::query_scalar(sql)
        .bind(collector_id)
        .bind(admin_operator_id)
        .bind(key.as_str())
        .bind(fingerprint)
        .persistent(named_statements())
        .fetch_optional(&mut *conn)
        .await?;
    if inserted.is_some() {
        return Ok(Claim::Fresh);
    }
    let sql = match owner {
        KeyOwner::Collector(_) => {
            "SELECT request_fingerprint, response_status, response_body \
         FROM idempotency_keys \
         WHERE collector_id = $1 AND idempotency_key = $3 AND $2::text IS NULL"
        }
        KeyOwner::Admin(_) => {
            "SELECT request_fingerprint, response_status, response_body \
         FROM idempotency_keys \
         WHERE collector_id IS NULL AND admin_operator_id = $2 AND idempotency_key = $3 \
           AND $1::bigint IS NULL"
        }
    };
    let (stored_fingerprint, status, body): (String, Option<i16>, Option<String>) =
        sqlx::query_as(sql)
            .bind(collector_id)
            .bind(admin_operator_id)
            .bind(key.as_str())
            .persistent(named_statements())
            .fetch_one(&mut *conn)
            .await?;
    if stored_fingerprint != fingerprint {
        return Err(DomainError::IdempotencyKeyReused.into());
    }
    let (Some(status), Some(body)) = (status.and_then(|s| u16::try_from(s).ok()), body) else {
        return Err(StoreError::Invariant(
            "committed idempotency key without a response".to_owned(),
        ));
    };
    Ok(Claim::Replay(StoredResponse {
        status,
        body,
        replayed: true,
        outbox_ids: Vec::new(),
    }))
}

/// Stores the successful response of the request that claimed `key`.
///
/// # Errors
/// Database failures.
pub(crate) async fn store_response(
    conn: &mut PgConnection,
    owner: &KeyOwner,
    key: &IdempotencyKey,
    status: u16,
    body: &str,
) -> Result<(), StoreError> {
    let (collector_id, admin_operator_id) = owner.columns();
    let status = i16::try_from(status)
        .map_err(|_| StoreError::Invariant(format!("status {status} out of range")))?;
    let sql = match owner {
        KeyOwner::Collector(_) => {
            "UPDATE idempotency_keys \
         SET response_status = $4, response_body = $5 \
         WHERE collector_id = $1 AND idempotency_key = $3 AND $2::text IS NULL \
           AND response_body IS NULL"
        }
        KeyOwner::Admin(_) => {
            "UPDATE idempotency_keys \
         SET response_status = $4, response_body = $5 \
         WHERE collector_id IS NULL AND admin_operator_id = $2 AND idempotency_key = $3 \
           AND $1::bigint IS NULL AND response_body IS NULL"
        }
    };
    let updated = sqlx::query(sql)
        .bind(collector_id)
        .bind(admin_operator_id)
        .bind(key.as_str())
        .bind(status)
        .bind(body)
        .persistent(named_statements())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if updated != 1 {
        return Err(StoreError::Invariant(format!(
            "idempotency key row not updated ({updated})"
        )));
    }
    Ok(())
}
