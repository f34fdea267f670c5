//! `POST /api/v1/batches/{id}/recall`: an admin takes back a batch that is running or
//! finished. The transaction lives in `keystone_store::batch_controls`; the recorder commands it
//! queues are published right after the commit.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::{BatchStatus, DomainError};
use keystone_http::extract::BatchKind;
use keystone_http::openapi::{Access, BatchIdPath, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::batch_controls::{RecallBatchResponse, recall_batch};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches/{id}/recall";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(recall))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// Only an active or completed batch is recalled.
    Errors = ErrorResponses::new(Access::Admin)
        .batch_id()
        .rules([
            DomainError::BatchNotFound,
            DomainError::BatchChangedConcurrently,
            DomainError::BatchNotRecallable { current_status: BatchStatus::Pending },
        ])
);

/// Any request body is ignored: the call itself is the decision.
#[utoipa::path(
    post,
    path = ROUTE,
    tag = "batches",
    operation_id = "recall_batch",
    summary = "Recall a batch",
    description = "Takes back an active or completed batch: it becomes recalled (`ended_at` set \
        if it was empty), its runnable tasks (pending, ready, in progress) become cancelled, \
        devices recording them are told through the outbox (reason `batch_recalled`: a ready \
        task's device is told to clear, an in-progress task's to cancel), and the workstation's \
        status follows. Completed tasks stay completed and still count for the order, which \
        does not move back. A batch already recalled answers `\"recalled\": false` and changes \
        nothing; a pending batch (cancel it instead) or a cancelled one answers 409 with \
        `current_status`.",
    security(("bearer" = [])),
    params(BatchIdPath),
    responses(
        (status = 200, description = "The batch, and what recalling it changed.", body = RecallBatchResponse,
            example = keystone_http::openapi::examples::batch_recalled),
        Errors,
    ),
)]
async fn recall(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<BatchKind>,
) -> Result<JsonResponse<RecallBatchResponse>, ApiError> {
    let response = recall_batch(&state.db, id).await?;
    state.publish_committed(&response.outbox_ids).await;
    Ok(JsonResponse(response))
}
