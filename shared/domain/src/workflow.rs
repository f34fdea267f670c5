//! Requests of the workflow controls: reopening completed tasks (SPEC §5.10) and re-targeting
//! an order (§5.12).

use std::time::Duration;

use serde::Deserialize;

use crate::{CompleteTasksRequest, DomainError};

/// How long a data collector may undo their own completions (SPEC §5.10); admins have no limit.
pub const COLLECTOR_REOPEN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A validated reopen call: the same body and rules as completing (quantity ≥ 1, defaulting to
/// 1, and a positive group), with its own idempotency fingerprint so one key cannot be used for
/// both a completion and its undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReopenTasksRequest(pub CompleteTasksRequest);

impl ReopenTasksRequest {
    /// The normalized form two requests must share to count as the same request under one
    /// idempotency key.
    pub fn fingerprint(&self, batch_id: i64) -> String {
        format!(
            "reopen-tasks batch={batch_id} sop_id={} subscene_id={} quantity={}",
            self.0.group.sop_id, self.0.group.subscene_id, self.0.quantity
        )
    }
}

/// The order's new target: at least 1, and not below its completed count.
// A missing `target_count` reads as 0 and is refused by [`OrderTargetRequest::validate`];
// `null` or a string fails to deserialize (SPEC §5).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct OrderTargetBody {
    #[serde(default)]
    #[schema(required = true, minimum = 1, maximum = 2_147_483_647)]
    pub target_count: i64,
}

/// A validated re-target: a count the `orders.target_count` INT column can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderTargetRequest {
    pub target_count: i32,
}

/// The largest target an order may have (`orders.target_count` is an `integer`).
pub const MAX_TARGET_COUNT: i64 = i32::MAX as i64;

impl OrderTargetRequest {
    /// # Errors
    /// [`DomainError::InvalidTargetCount`] unless `1 ≤ target_count ≤ 2^31 − 1`.
    pub fn validate(body: OrderTargetBody) -> Result<Self, DomainError> {
        i32::try_from(body.target_count)
            .ok()
            .filter(|n| *n >= 1)
            .map(|target_count| Self { target_count })
            .ok_or(DomainError::InvalidTargetCount {
                max: MAX_TARGET_COUNT,
            })
    }
}

/// An admin's order control (SPEC §5.12), named in the 409 a status that forbids it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderControl {
    Pause,
    Resume,
    Cancel,
    Retarget,
}

impl OrderControl {
    pub const fn verb(self) -> &'static str {
        match self {
            Self::Pause => "pause it",
            Self::Resume => "resume it",
            Self::Cancel => "cancel it",
            Self::Retarget => "change its target",
        }
    }
}

impl std::fmt::Display for OrderControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.verb())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(json: &str) -> Result<i32, String> {
        let body: OrderTargetBody = serde_json::from_str(json).map_err(|e| e.to_string())?;
        OrderTargetRequest::validate(body)
            .map(|r| r.target_count)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_target_must_fit_the_column_and_be_positive() {
        assert_eq!(target(r#"{"target_count":1}"#), Ok(1));
        assert_eq!(target(r#"{"target_count":2147483647}"#), Ok(i32::MAX));
        for bad in [
            r#"{}"#,
            r#"{"target_count":0}"#,
            r#"{"target_count":-5}"#,
            r#"{"target_count":2147483648}"#,
            r#"{"target_count":9223372036854775807}"#,
        ] {
            assert_eq!(
                target(bad),
                Err("target_count must be between 1 and 2147483647".to_owned()),
                "{bad}"
            );
        }
    }

    #[test]
    fn null_and_strings_are_wrong_types() {
        assert!(target(r#"{"target_count":null}"#).is_err_and(|e| e.contains("invalid type")));
        assert!(target(r#"{"target_count":"5"}"#).is_err_and(|e| e.contains("invalid type")));
    }

    #[test]
    fn reopening_and_completing_never_share_a_fingerprint() {
        let request = CompleteTasksRequest {
            quantity: 2,
            group: crate::TaskGroupKey {
                sop_id: 8,
                subscene_id: 3,
            },
        };
        assert_ne!(
            ReopenTasksRequest(request).fingerprint(4),
            request.fingerprint(4)
        );
    }
}
