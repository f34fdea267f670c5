//! `POST /api/v1/batches/{id}/cancel`: an admin pulls work back from a
//! workstation. The transaction lives in `keystone_store::batch_controls`; the recorder commands
//! it queues are published right after the commit.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::{BatchStatus, DomainError};
use keystone_http::extract::BatchKind;
use keystone_http::openapi::{Access, BatchIdPath, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::batch_controls::{CancelBatchResponse, cancel_batch};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches/{id}/cancel";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(cancel))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.11's rules.
    Errors = ErrorResponses::new(Access::Admin)
        .batch_id()
        .rules([
            DomainError::BatchNotFound,
            DomainError::BatchChangedConcurrently,
            DomainError::BatchNotCancellable { current_status: BatchStatus::Completed },
        ])
);

/// Any request body is ignored: the call itself is the decision.
#[utoipa::path(
    post,
    path = ROUTE,
    tag = "batches",
    operation_id = "cancel_batch",
    summary = "Cancel a batch",
    description = "Pulls work back from a workstation: a pending or active batch and its runnable \
        tasks become cancelled, and devices recording them are told through the outbox. \
        Completed tasks stay completed; the order is not advanced. A batch already cancelled \
        answers `\"cancelled\": false` and changes nothing.",
    security(("bearer" = [])),
    params(BatchIdPath),
    responses(
        (status = 200, description = "The batch, and what cancelling it changed.", body = CancelBatchResponse, example = json!({
            "batch": {
                "id": "2",
                "batch_id": "batch_20261124_093000_000_02_b4abb622",
                "order_id": "1",
                "workstation_id": "2",
                "organization_id": "1",
                "name": "Axon batch",
                "notes": null,
                "metadata": null,
                "status": "cancelled",
                "task_count": 8,
                "completed_count": 0,
                "created_at": "2026-11-24T09:30:00.000000Z"
            },
            "cancelled": true,
            "cancelled_task_count": 8,
            "notifications_enqueued": 4
        })),
        Errors,
    ),
)]
async fn cancel(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<BatchKind>,
) -> Result<JsonResponse<CancelBatchResponse>, ApiError> {
    let response = cancel_batch(&state.db, id).await?;
    state.publish_committed(&response.outbox_ids).await;
    Ok(JsonResponse(response))
}
