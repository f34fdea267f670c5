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

/// The outcome of claiming a key.
pub(crate) enum Claim {
    /// This request owns the key; it must store its response before committing.
    Fresh,
    /// A committed request already answered under this key.
    Replay(StoredResponse),
}

/// Claims `key` for `collector_id`, or finds the response stored under it.
///
/// # Errors
/// [`DomainError::IdempotencyKeyReused`] when the stored request differs.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    collector_id: i64,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> Result<Claim, StoreError> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (collector_id, idempotency_key, request_fingerprint) \
         VALUES ($1, $2, $3) ON CONFLICT (collector_id, idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(collector_id)
    .bind(key.as_str())
    .bind(fingerprint)
    .persistent(named_statements())
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(Claim::Fresh);
    }
    let (stored_fingerprint, status, body): (String, Option<i16>, Option<String>) = sqlx::query_as(
        "SELECT request_fingerprint, response_status, response_body FROM idempotency_keys \
         WHERE collector_id = $1 AND idempotency_key = $2",
    )
    .bind(collector_id)
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
    collector_id: i64,
    key: &IdempotencyKey,
    status: u16,
    body: &str,
) -> Result<(), StoreError> {
    let status = i16::try_from(status)
        .map_err(|_| StoreError::Invariant(format!("status {status} out of range")))?;
    let updated = sqlx::query(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4 \
         WHERE collector_id = $1 AND idempotency_key = $2 AND response_body IS NULL",
    )
    .bind(collector_id)
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
