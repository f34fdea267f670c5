//! Keystone's domain: the vocabulary every other crate shares.
//!
//! Nothing here talks to a database or to HTTP. Statuses, public ids, request validation and
//! the [`DomainError`] a rule violation produces live here so the transaction crate and the
//! HTTP layer agree on them without depending on each other.

pub mod batches;
pub mod collectors;
pub mod complete;
pub mod dispatch;
pub mod error;
pub mod fields;
pub mod handoff;
pub mod idempotency;
pub mod ids;
pub mod listing;
pub mod login;
pub mod orders;
pub mod reference;
pub mod session;
pub mod stations;
pub mod status;
pub mod workflow;

pub use complete::{CompleteTasksBody, CompleteTasksRequest, TaskGroupKey};
pub use dispatch::{
    AdjustBatchBody, AdjustBatchRequest, CreateBatchBody, CreateBatchRequest, GroupQuantity,
    MAX_TASKS_PER_ADJUST,
};
pub use error::DomainError;
pub use handoff::{HandoffPayload, Workflow};
pub use idempotency::IdempotencyKey;
pub use login::{LoginBody, LoginRequest};
pub use session::{CollectorSession, CollectorStanding};
pub use status::{
    BatchStatus, CollectorStatus, OrderPriority, OrderStatus, RecorderAction, TaskStatus,
    UnknownStatus, WorkstationStatus,
};
pub use workflow::{
    COLLECTOR_REOPEN_WINDOW, MAX_TARGET_COUNT, OrderControl, OrderTargetBody, OrderTargetRequest,
    ReopenTasksRequest,
};

/// Parses a path id the way every endpoint must: ASCII digits only, a positive `i64`.
///
/// Signs, whitespace, and values that overflow are refused, so `abc`, `0`, `-1`, `+1` and
/// `99999999999999999999` all answer `None`.
pub fn parse_positive_id(raw: &str) -> Option<i64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// What went wrong in a JSON document that holds a secret, without quoting any of it: serde's
/// own message can contain the value it choked on (`invalid type: string "hunter2"`), so only
/// the category and the position are kept.
pub fn redacted_json_error(error: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        error.classify(),
        error.line(),
        error.column()
    )
    .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::parse_positive_id;

    #[test]
    fn positive_ids_parse_and_everything_else_is_refused() {
        assert_eq!(parse_positive_id("12"), Some(12));
        assert_eq!(parse_positive_id("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "abc",
            "0",
            "-1",
            "+1",
            " 1",
            "1.5",
            "99999999999999999999",
            "00",
        ] {
            assert_eq!(parse_positive_id(bad), None, "{bad:?} must be refused");
        }
    }
}
