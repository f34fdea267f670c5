//! Login throttling (SPEC §4), in PostgreSQL so every Lambda container counts the same
//! failures. See the `login_failures` migration for the rules the database applies.

use std::time::Duration;

use crate::database::named_statements;
use crate::{Database, StoreError, millis};

/// When an account or a source address is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// The consecutive failure from which an account is blocked (10–20).
    pub account_threshold: u32,
    /// Failures from one address within [`Self::source_window`] that block it (≥ 100: a
    /// whole factory may share one address).
    pub source_threshold: u32,
    pub source_window: Duration,
    /// The longest an account is blocked at a time; the block doubles per failure until then.
    pub max_block: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_threshold: 10,
            source_threshold: 100,
            source_window: Duration::from_secs(15 * 60),
            max_block: Duration::from_secs(15 * 60),
        }
    }
}

/// How long `account` (or `source`) must wait before its next login is tried; `None` when
/// neither is blocked.
///
/// # Errors
/// Database failures.
pub async fn login_blocked_for(
    db: &Database,
    account: &str,
    source: Option<&str>,
) -> Result<Option<Duration>, StoreError> {
    let mut tx = db.begin().await?;
    let remaining_ms: Option<i64> = sqlx::query_scalar(
        "SELECT ceil(extract(epoch FROM max(blocked_until) - now()) * 1000)::bigint \
         FROM login_failures \
         WHERE ((scope = 'account' AND subject = $1) OR (scope = 'source' AND subject = $2)) \
           AND blocked_until > now()",
    )
    .bind(account)
    .bind(source)
    .persistent(named_statements())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(remaining_ms.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
}

/// Counts a failed login; blocks what crossed its threshold.
///
/// # Errors
/// Database failures.
pub async fn record_login_failure(
    db: &Database,
    account: &str,
    source: Option<&str>,
    policy: ThrottlePolicy,
) -> Result<(), StoreError> {
    let seconds = |d: Duration| i32::try_from(millis(d) / 1000).unwrap_or(i32::MAX);
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let mut tx = db.begin().await?;
    sqlx::query("SELECT keystone_login_failed($1, $2, $3, $4, $5, $6)")
        .bind(account)
        .bind(source)
        .bind(count(policy.account_threshold))
        .bind(count(policy.source_threshold))
        .bind(seconds(policy.source_window))
        .bind(seconds(policy.max_block))
        .persistent(named_statements())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A successful login: the account's consecutive failures start again from zero.
///
/// # Errors
/// Database failures.
pub async fn record_login_success(db: &Database, account: &str) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM login_failures WHERE scope = 'account' AND subject = $1")
        .bind(account)
        .persistent(named_statements())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
