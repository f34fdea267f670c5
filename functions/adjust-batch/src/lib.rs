//! `POST /api/v1/batches/{id}/tasks`: an admin sets the target live task count
//! of a batch's task groups. The rules and the transaction live in
//! `keystone_store::dispatch`; this crate only routes and translates.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::{AdjustBatchBody, AdjustBatchRequest, BatchStatus, DomainError};
use keystone_http::extract::BatchKind;
use keystone_http::openapi::{Access, BatchIdPath, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, Json, PathId};
use keystone_store::dispatch::AdjustBatchResponse;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches/{id}/tasks";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(adjust_batch))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.2's rules.
    Errors = ErrorResponses::new(Access::Admin)
        .batch_id()
        .json_body()
        .rules([
            DomainError::TaskGroupsEmpty,
            DomainError::InvalidTaskGroupAt { index: 1 },
            DomainError::InvalidQuantityAt { index: 1, min: 0 },
            DomainError::DuplicateTaskGroup { first: 0, second: 2, sop_id: 1, subscene_id: 1 },
            DomainError::TooManyTasksAdded { requested: 20_000, max: 10_000 },
            DomainError::BatchNotFound,
            DomainError::BatchChangedConcurrently,
            DomainError::BatchNotEditable { current_status: BatchStatus::Completed },
            DomainError::BelowLockedTasks { sop_id: 1, subscene_id: 1, locked_count: 4, requested: 2 },
            DomainError::UnknownSop { sop_id: 99 },
            DomainError::UnknownSubscene { subscene_id: 99 },
            DomainError::BatchQuotaExceeded {
                target_count: 40,
                order_task_count: 38,
                current_batch_task_count: 30,
                max_batch_target: 32,
                requested_batch_task_count: 50,
                remaining_assignable: 2,
            },
            DomainError::OrderCompletedNoInsert,
            DomainError::OrderCancelledNoInsert,
        ])
);

#[utoipa::path(
    post,
    path = ROUTE,
    tag = "batches",
    operation_id = "adjust_batch_tasks",
    summary = "Set the live task count of task groups",
    description = "Declarative: each named group ends up with `quantity` live tasks; groups not \
        named keep theirs. Reductions soft-delete the newest pending, episode-less tasks and never \
        go below a group's locked (started or recorded) tasks; insertions are bounded by the \
        order's target. The batch then advances as a completion would.",
    security(("bearer" = [])),
    params(BatchIdPath),
    request_body(content = AdjustBatchBody, example = json!({"task_groups": [{"sop_id": 1, "subscene_id": 1, "quantity": 18}]})),
    responses(
        (status = 200, description = "The tasks created and the ids of the tasks removed.", body = AdjustBatchResponse, example = json!({
            "created_tasks": [
                {
                    "id": "39",
                    "task_id": "task_20261124_094012_642_00_4a8ccd0a",
                    "sop_id": "2",
                    "subscene_id": "2",
                    "status": "pending",
                    "created_at": "2026-11-24T09:40:12.640147Z"
                },
                {
                    "id": "40",
                    "task_id": "task_20261124_094012_642_01_48f17b6c",
                    "sop_id": "2",
                    "subscene_id": "2",
                    "status": "pending",
                    "created_at": "2026-11-24T09:40:12.640147Z"
                }
            ],
            "deleted_task_ids": []
        })),
        Errors,
    ),
)]
async fn adjust_batch(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id: batch_id, .. }: PathId<BatchKind>,
    Json(body): Json<AdjustBatchBody>,
) -> Result<JsonResponse<AdjustBatchResponse>, ApiError> {
    let request = AdjustBatchRequest::validate(body)?;
    let response = keystone_store::adjust_batch_tasks(&state.db, batch_id, request).await?;
    Ok(JsonResponse(response))
}
