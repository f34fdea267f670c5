//! `POST /api/v1/batches/{id}/reopen-tasks`: undo a mistaken completion, for an
//! admin or the collector of the batch's workstation. The rules and the transaction live in
//! `keystone_store::reopen`; this crate only routes and translates.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use keystone_domain::{
    BatchStatus, CompleteTasksBody, CompleteTasksRequest, DomainError, IdempotencyKey, OrderStatus,
    ReopenTasksRequest,
};
use keystone_http::extract::BatchKind;
use keystone_http::openapi::{Access, BatchIdPath, ErrorResponses, IdempotencyKeyHeader};
use keystone_http::{ApiError, AppState, Json, PathId, StaffAuth};
use keystone_store::reopen::ReopenTasksResponse;
use keystone_store::reopen::{ReopenTasks, Reopener, reopen_tasks};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches/{id}/reopen-tasks";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(reopen))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.10's rules.
    Errors = ErrorResponses::new(Access::Staff)
        .batch_id()
        .json_body()
        .rules([
            DomainError::QuantityTooSmall,
            DomainError::InvalidTaskGroup,
            DomainError::InvalidIdempotencyKey,
            DomainError::WorkstationNotAssigned,
            DomainError::BatchNotFound,
            DomainError::BatchNotOnWorkstation,
            DomainError::TaskGroupNotFound,
            DomainError::OrderClosedForReopen { order_status: OrderStatus::Completed },
            DomainError::BatchNotReopenable { current_status: BatchStatus::Cancelled },
            DomainError::StationSuperseded { superseded_by: Some("5".to_owned()) },
            DomainError::NotEnoughReopenable { reopenable_count: 1, requested: 2 },
            DomainError::IdempotencyKeyReused,
            DomainError::BatchChangedConcurrently,
        ])
);

/// The body has complete-tasks' shape and rules (quantity >= 1, defaulting to 1; a positive
/// group), checked in the same order: token, path id, body, idempotency key.
#[utoipa::path(
    post,
    path = ROUTE,
    tag = "collector",
    operation_id = "reopen_tasks",
    summary = "Undo a mistaken completion",
    description = "The `quantity` most recently completed, episode-less tasks of a task group go \
        back to pending; a completed batch becomes active again. A data collector \
        may reopen only tasks of their own workstation completed within the last 15 minutes; an \
        admin any. Not possible once the order is completed or cancelled, nor when the batch's \
        station binding was rebound or unbound since (409 `station_superseded`): nobody works \
        there any more.",
    security(("bearer" = [])),
    params(BatchIdPath, IdempotencyKeyHeader),
    request_body(content = CompleteTasksBody, example = json!({"quantity": 1, "sop_id": 1, "subscene_id": 1})),
    responses(
        (status = 200, description = "The tasks reopened, with the batch's and the order's progress.",
            body = ReopenTasksResponse, headers(("Idempotent-Replayed" = String, description = "`true` on the stored answer of an earlier request with the same `Idempotency-Key`; absent otherwise.")),
            example = json!({
                "batch_id": "batch_20261124_093000_000_01_7a8b3d43",
                "requested_count": 1,
                "reopened_count": 1,
                "group": {
                    "sop_id": 1,
                    "subscene_id": 1
                },
                "tasks": [
                    {
                        "id": "2",
                        "task_id": "task_20261124_093000_000_02_f04aba11",
                        "status": "pending"
                    }
                ],
                "batch": {
                    "id": "1",
                    "status": "active",
                    "completed_count": 1,
                    "task_count": 30
                },
                "order": {
                    "id": "1",
                    "status": "in_progress",
                    "completed_count": 1,
                    "target_count": 40
                }
            })),
        Errors,
    ),
)]
async fn reopen(
    State(state): State<AppState>,
    staff: StaffAuth,
    PathId { id: batch_id, .. }: PathId<BatchKind>,
    headers: HeaderMap,
    Json(body): Json<CompleteTasksBody>,
) -> Result<Response, ApiError> {
    let request = ReopenTasksRequest(CompleteTasksRequest::validate(body)?);
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()?;
    let by = match staff {
        StaffAuth::Admin { operator_id } => Reopener::Admin { operator_id },
        StaffAuth::Collector(session) => Reopener::Collector(session),
    };
    let command = ReopenTasks {
        by,
        batch_id,
        request,
        idempotency_key,
    };
    let stored = reopen_tasks(&state.db, command).await?;
    Ok(keystone_http::stored_response(stored))
}
