//! `POST /api/v1/batches/{id}/complete-tasks`: a data collector completes N
//! pending tasks of one task group. The rules and the transaction live in
//! `keystone_store::complete_tasks`; this crate only routes and translates.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use keystone_domain::{
    BatchStatus, CompleteTasksBody, CompleteTasksRequest, DomainError, IdempotencyKey, OrderStatus,
};
use keystone_http::extract::BatchKind;
use keystone_http::openapi::{Access, BatchIdPath, ErrorResponses, IdempotencyKeyHeader};
use keystone_http::{ApiError, AppState, CollectorAuth, Json, PathId};
use keystone_store::CompleteTaskGroup;
use keystone_store::complete_tasks::CompleteTasksResponse;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches/{id}/complete-tasks";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(complete_tasks))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.1's table, in its order.
    Errors = ErrorResponses::new(Access::Collector)
        .batch_id()
        .json_body()
        .rules([
            DomainError::QuantityTooSmall,
            DomainError::InvalidTaskGroup,
            DomainError::InvalidIdempotencyKey,
            DomainError::WorkstationNotAssigned,
            DomainError::BatchNotFound,
            DomainError::BatchNotOnWorkstation,
            DomainError::RequiresAxon,
            DomainError::OrderCancelled {
                order_status: OrderStatus::Cancelled,
            },
            DomainError::BatchNotOpen {
                current_status: BatchStatus::Completed,
                completed_count: 20,
                task_count: 20,
            },
            DomainError::QuantityExceedsBatch {
                task_count: 30,
                requested: 50,
            },
            DomainError::TaskGroupNotFound,
            DomainError::NotEnoughPending {
                pending_count: 2,
                requested: 5,
            },
            DomainError::IdempotencyKeyReused,
            DomainError::BatchChangedConcurrently,
        ])
);

/// Extractors run in the order SPEC §5.1 checks: token, path id, body; then the body rules
/// and the idempotency key, then the transaction.
#[utoipa::path(
    post,
    path = ROUTE,
    tag = "collector",
    operation_id = "complete_tasks",
    summary = "Complete pending tasks of a task group",
    description = "Marks the earliest `quantity` pending tasks of one task group of the batch \
        completed, and advances the batch and its order in the same transaction; the order is \
        finalized when this completion reaches its target. Only for batches on the \
        caller's workstation whose robot does not record through Axon.",
    security(("bearer" = [])),
    params(BatchIdPath, IdempotencyKeyHeader),
    request_body(content = CompleteTasksBody, example = json!({"quantity": 2, "sop_id": 1, "subscene_id": 1})),
    responses(
        (status = 200, description = "The tasks completed, with the batch's and the order's progress.",
            body = CompleteTasksResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` on the stored answer of an earlier request with the same `Idempotency-Key`; absent otherwise.")),
            example = json!({
                "batch_id": "batch_20261124_093000_000_01_7a8b3d43",
                "requested_count": 2,
                "completed_count": 2,
                "created_count": 0,
                "group": {
                    "sop_id": 1,
                    "subscene_id": 1,
                    "scene_name": "厨房",
                    "subscene_name": "台面"
                },
                "tasks": [
                    {
                        "id": "1",
                        "task_id": "task_20261124_093000_000_01_ffd34267",
                        "status": "completed",
                        "completed_at": "2026-11-24T09:35:12.380720Z"
                    },
                    {
                        "id": "2",
                        "task_id": "task_20261124_093000_000_02_f04aba11",
                        "status": "completed",
                        "completed_at": "2026-11-24T09:35:12.380720Z"
                    }
                ],
                "batch": {
                    "id": "1",
                    "status": "active",
                    "completed_count": 2,
                    "task_count": 30
                },
                "order": {
                    "id": "1",
                    "status": "in_progress",
                    "completed_count": 2,
                    "target_count": 40
                }
            })),
        Errors,
    ),
)]
async fn complete_tasks(
    State(state): State<AppState>,
    collector: CollectorAuth,
    PathId { id: batch_id, .. }: PathId<BatchKind>,
    headers: HeaderMap,
    Json(body): Json<CompleteTasksBody>,
) -> Result<Response, ApiError> {
    let request = CompleteTasksRequest::validate(body)?;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()?;
    let command = CompleteTaskGroup {
        session: collector.session,
        batch_id,
        request,
        idempotency_key,
    };
    let stored = keystone_store::complete_task_group(&state.db, command).await?;
    state.publish_committed(&stored.outbox_ids).await;
    Ok(keystone_http::stored_response(stored))
}
