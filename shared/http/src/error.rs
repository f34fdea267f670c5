//! The one place errors become HTTP responses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keystone_auth::AuthError;
use keystone_domain::DomainError;
use keystone_store::{Busy, StoreError};
use serde_json::{Map, Value, json};

/// Every failure a handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Rejected(#[from] DomainError),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A limit of SPEC §6 or a conflict: nothing changed, retrying is safe.
    #[error("{}", busy_message(*.0))]
    Busy(Busy, #[source] StoreError),
    /// A bug or an outage. The client sees a fixed message; the cause chain is logged once.
    #[error("internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Rejected(rule) => Self::Rejected(rule),
            err if err.is_data_exception() => {
                // Warned, not just noted: a check before the database should have caught it.
                tracing::warn!(error = %cause_chain(&err), "the database refused a value");
                Self::Rejected(DomainError::UnstorableValue)
            }
            err => match err.busy() {
                Some(busy) => Self::Busy(busy, err),
                None => Self::Internal(Box::new(err)),
            },
        }
    }
}

/// The `code` of a busy answer: which limit turned the request away.
fn busy_code(busy: Busy) -> &'static str {
    match busy {
        Busy::LockWait => "lock_timeout",
        Busy::Statement => "statement_timeout",
        Busy::IdleTransaction => "transaction_timeout",
        Busy::Conflict => "concurrent_conflict",
        Busy::Pool => "no_database_connection",
        Busy::ConnectionLost => "database_connection_lost",
    }
}

/// What a client is told when the database turned its request away.
fn busy_message(busy: Busy) -> &'static str {
    match busy {
        Busy::LockWait => "timed out waiting for a lock held by another request; retry the request",
        Busy::Statement => "the database took too long to answer; retry the request",
        Busy::IdleTransaction => "the request's transaction was cut off; retry the request",
        Busy::Conflict => "the request conflicted with a concurrent one; retry the request",
        Busy::Pool => "no database connection is free; retry the request",
        Busy::ConnectionLost => "the database connection was lost; retry the request",
    }
}

impl ApiError {
    /// The stable, machine-readable `code` of the error body (SPEC §5), one per rule or
    /// failure: clients branch on it and translate the message themselves.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Auth(failure) => failure.code(),
            Self::Rejected(rule) => rule.code(),
            Self::PayloadTooLarge => "request_body_too_large",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Busy(busy, _) => busy_code(*busy),
            Self::Internal(_) => "internal_error",
        }
    }

    /// The status code for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Auth(AuthError::RoleRequired(_) | AuthError::UnsupportedRole) => {
                StatusCode::FORBIDDEN
            }
            Self::Auth(_) => StatusCode::UNAUTHORIZED,
            Self::Rejected(rule) => rule_status(rule),
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Busy(..) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn rule_status(rule: &DomainError) -> StatusCode {
    use DomainError as E;
    match rule {
        E::InvalidBatchId
        | E::InvalidRequestBody { .. }
        | E::InvalidListParameter { .. }
        | E::OrderNameTooLong { .. }
        | E::NothingToUpdate { .. }
        | E::StatusNotPatchable { .. }
        | E::ImmutableField { .. }
        | E::UnknownOrganization
        | E::UnknownScene
        | E::UnstorableText { .. }
        | E::UnstorableValue
        | E::QuantityTooSmall
        | E::InvalidTaskGroup
        | E::InvalidIdempotencyKey
        | E::QuantityExceedsBatch { .. }
        | E::NotEnoughPending { .. }
        | E::InvalidOrderId
        | E::InvalidCollectorId
        | E::InvalidStationId
        | E::UnknownRobot
        | E::UnknownCollector
        | E::PasswordTooShort { .. }
        | E::PasswordTooLong { .. }
        | E::TextTooLong { .. }
        | E::InvalidEmail
        | E::MissingField(_)
        | E::TaskGroupsEmpty
        | E::InvalidTaskGroupAt { .. }
        | E::InvalidQuantityAt { .. }
        | E::DuplicateTaskGroup { .. }
        | E::TooManyTasks { .. }
        | E::TooManyTasksAdded { .. }
        | E::MissingCredentials
        | E::UnknownOrder
        | E::UnknownWorkstation
        | E::UnknownSop { .. }
        | E::UnknownSubscene { .. }
        | E::WorkstationOrganizationMismatch
        | E::BelowLockedTasks { .. }
        | E::BatchQuotaExceeded { .. }
        | E::OrderQuotaExceeded { .. }
        | E::NotEnoughReopenable { .. }
        | E::InvalidTargetCount { .. }
        | E::TargetBelowCompleted { .. } => StatusCode::BAD_REQUEST,
        E::CollectorNotFound | E::SessionEnded | E::InvalidCredentials => StatusCode::UNAUTHORIZED,
        E::BatchNotOnWorkstation => StatusCode::FORBIDDEN,
        E::WorkstationNotAssigned
        | E::BatchNotFound
        | E::TaskGroupNotFound
        | E::OrderNotFound
        | E::StationNotFound
        | E::DataCollectorNotFound => StatusCode::NOT_FOUND,
        E::RequiresAxon
        | E::OrderCancelled { .. }
        | E::BatchNotOpen { .. }
        | E::BatchChangedConcurrently
        | E::OrderClosedForBatches { .. }
        | E::BatchNotEditable { .. }
        | E::BatchNotCancellable { .. }
        | E::BatchNotRecallable { .. }
        | E::BatchNotDeletable { .. }
        | E::WorkstationOffline
        | E::OrderCompletedNoInsert
        | E::OrderCancelledNoInsert
        | E::OrderClosedForReopen { .. }
        | E::BatchNotReopenable { .. }
        | E::OrderControlNotAllowed { .. }
        | E::OrderNameTaken
        | E::OperatorIdTaken
        | E::CollectorHasStation { .. }
        | E::CollectorNotActive { .. }
        | E::CollectorWithoutOrganization
        | E::CollectorOrganizationMismatch
        | E::RobotAlreadyBound { .. }
        | E::CollectorAlreadyBound { .. }
        | E::StationHasOpenBatches { .. }
        | E::StationSuperseded { .. }
        | E::WorkstationStatusDerived { .. }
        | E::OrderHasBatches { .. } => StatusCode::CONFLICT,
        E::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        E::TooManyLoginAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// The extra members of the error body that let a client act without another call. No
/// wildcard arm: a new rule must decide what it adds.
fn rule_fields(rule: &DomainError) -> Value {
    use DomainError as E;
    match rule {
        E::InvalidRequestBody { detail } => json!({ "detail": detail }),
        E::InvalidListParameter { parameter, .. } => json!({ "parameter": parameter }),
        E::OrderNameTooLong { max } => json!({ "max": max }),
        E::ImmutableField { field } => json!({ "field": field }),
        E::OrderHasBatches { batch_count } => json!({ "batch_count": batch_count }),
        E::UnstorableText { field } => json!({ "field": field }),
        E::RequiresAxon => json!({ "requires_axon": true }),
        // `current_status` names the blocking object's status on every error; `order_status`
        // stays beside it where clients already read it.
        E::OrderCancelled { order_status }
        | E::OrderClosedForBatches { order_status }
        | E::OrderClosedForReopen { order_status } => {
            json!({ "order_status": order_status, "current_status": order_status })
        }
        E::BatchNotOpen {
            current_status,
            completed_count,
            task_count,
        } => json!({
            "current_status": current_status,
            "completed_count": completed_count,
            "task_count": task_count,
        }),
        E::QuantityExceedsBatch {
            task_count,
            requested,
        } => {
            json!({ "task_count": task_count, "requested": requested })
        }
        E::NotEnoughPending {
            pending_count,
            requested,
        } => {
            json!({ "pending_count": pending_count, "requested": requested })
        }
        E::DuplicateTaskGroup {
            first,
            second,
            sop_id,
            subscene_id,
        } => json!({
            "indexes": [first, second], "sop_id": sop_id, "subscene_id": subscene_id,
        }),
        E::InvalidTaskGroupAt { index } | E::InvalidQuantityAt { index, .. } => {
            json!({ "index": index })
        }
        E::TooManyTasks { requested, max } | E::TooManyTasksAdded { requested, max } => {
            json!({ "requested": requested, "max": max })
        }
        E::UnknownSop { sop_id } => json!({ "sop_id": sop_id }),
        E::UnknownSubscene { subscene_id } => json!({ "subscene_id": subscene_id }),
        E::OrderCancelledNoInsert => {
            json!({ "order_status": "cancelled", "current_status": "cancelled" })
        }
        E::OrderCompletedNoInsert => {
            json!({ "order_status": "completed", "current_status": "completed" })
        }
        E::WorkstationOffline => json!({ "current_status": "offline" }),
        E::CollectorHasStation { workstation_id }
        | E::RobotAlreadyBound { workstation_id }
        | E::CollectorAlreadyBound { workstation_id } => {
            json!({ "workstation_id": workstation_id })
        }
        E::CollectorNotActive { collector_status } => {
            json!({ "collector_status": collector_status })
        }
        E::StationHasOpenBatches { open_batch_count } => {
            json!({ "open_batch_count": open_batch_count })
        }
        E::StationSuperseded { superseded_by } => json!({ "superseded_by": superseded_by }),
        E::WorkstationStatusDerived { derived_status, .. } => {
            json!({ "derived_status": derived_status })
        }
        E::PasswordTooShort { min } => json!({ "min": min }),
        E::PasswordTooLong { max } => json!({ "max": max }),
        E::TextTooLong { field, max } => json!({ "field": field, "max": max }),
        E::MissingField(field) => json!({ "field": field }),
        E::BatchNotEditable { current_status }
        | E::BatchNotCancellable { current_status }
        | E::BatchNotRecallable { current_status }
        | E::BatchNotReopenable { current_status } => {
            json!({ "current_status": current_status })
        }
        E::BatchNotDeletable {
            current_status,
            completed_count,
        } => json!({ "current_status": current_status, "completed_count": completed_count }),
        E::OrderControlNotAllowed { current_status, .. } => {
            json!({ "current_status": current_status })
        }
        E::NotEnoughReopenable {
            reopenable_count,
            requested,
        } => json!({ "reopenable_count": reopenable_count, "requested": requested }),
        E::InvalidTargetCount { max } => json!({ "max": max }),
        E::TargetBelowCompleted {
            completed_count,
            requested,
        } => json!({ "completed_count": completed_count, "requested": requested }),
        E::BelowLockedTasks {
            sop_id,
            subscene_id,
            locked_count,
            requested,
        } => json!({
            "sop_id": sop_id, "subscene_id": subscene_id,
            "locked_count": locked_count, "requested": requested,
        }),
        E::BatchQuotaExceeded {
            target_count,
            order_task_count,
            current_batch_task_count,
            max_batch_target,
            requested_batch_task_count,
            remaining_assignable,
        } => json!({
            "target_count": target_count,
            "order_task_count": order_task_count,
            "current_batch_task_count": current_batch_task_count,
            "max_batch_target": max_batch_target,
            "requested_batch_task_count": requested_batch_task_count,
            "remaining_assignable": remaining_assignable,
        }),
        E::OrderQuotaExceeded {
            target_count,
            task_count,
            remaining,
            requested,
        } => json!({
            "target_count": target_count, "task_count": task_count,
            "remaining": remaining, "requested": requested,
        }),
        E::InvalidBatchId
        | E::InvalidOrderId
        | E::InvalidCollectorId
        | E::InvalidStationId
        | E::StationNotFound
        | E::UnknownRobot
        | E::UnknownCollector
        | E::CollectorWithoutOrganization
        | E::CollectorOrganizationMismatch
        | E::DataCollectorNotFound
        | E::OperatorIdTaken
        | E::InvalidEmail
        | E::QuantityTooSmall
        | E::InvalidTaskGroup
        | E::InvalidIdempotencyKey
        | E::IdempotencyKeyReused
        | E::CollectorNotFound
        | E::WorkstationNotAssigned
        | E::BatchNotFound
        | E::BatchNotOnWorkstation
        | E::TaskGroupNotFound
        | E::OrderNotFound
        | E::TaskGroupsEmpty
        | E::OrderNameTaken
        | E::NothingToUpdate { .. }
        | E::StatusNotPatchable { .. }
        | E::UnknownOrganization
        | E::UnknownScene
        | E::UnknownOrder
        | E::UnknownWorkstation
        | E::WorkstationOrganizationMismatch
        | E::BatchChangedConcurrently
        | E::MissingCredentials
        | E::InvalidCredentials
        | E::SessionEnded
        | E::TooManyLoginAttempts { .. }
        | E::UnstorableValue => Value::Null,
    }
}

/// Renders an error's cause chain on one line for the logs.
fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl ApiError {
    /// The JSON body a client receives: `{"error": message, "code": code, ...extra fields}`
    /// (SPEC §5). The API document renders its error examples with this too.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".to_owned(), Value::String(self.to_string()));
        body.insert("code".to_owned(), Value::String(self.code().to_owned()));
        if let Self::Rejected(rule) = self
            && let Value::Object(extra) = rule_fields(rule)
        {
            body.extend(extra);
        }
        Value::Object(body)
    }

    /// The `Retry-After` seconds the answer carries, when retrying is the remedy.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::Busy(..) => Some(RETRY_AFTER_SECONDS),
            Self::Rejected(DomainError::TooManyLoginAttempts { retry_after_secs }) => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }
}

/// What a busy answer's `Retry-After` says.
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = self.body();
        match &self {
            Self::Rejected(rule) => {
                tracing::info!(status = status.as_u16(), error = %rule, "request rejected");
            }
            Self::Internal(cause) => {
                tracing::error!(error = %cause_chain(cause.as_ref()), "request failed");
            }
            Self::Busy(_, cause) => {
                tracing::warn!(error = %cause_chain(cause), "request hit contention");
            }
            Self::Auth(_) | Self::PayloadTooLarge | Self::NotFound | Self::MethodNotAllowed => {
                tracing::info!(status = status.as_u16(), error = %self, "request rejected");
            }
        }
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystone_domain::BatchStatus;

    #[test]
    fn extra_fields_sit_beside_the_message() {
        let response = ApiError::from(DomainError::BatchNotOpen {
            current_status: BatchStatus::Completed,
            completed_count: 3,
            task_count: 4,
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = ApiError::Internal("secret detail".into());
        assert_eq!(err.to_string(), "internal server error");
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
