//! `DELETE /api/v1/batches/{id}`: an admin removes a batch no work was done in. The
//! transaction lives in `keystone_store::batch_controls`.

use axum::extract::State;
use axum::http::StatusCode;
use keystone_domain::{BatchStatus, DomainError};
use keystone_http::extract::BatchKind;
use keystone_http::openapi::{Access, BatchIdPath, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::batch_controls::delete_batch;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "DELETE";
pub const ROUTE: &str = "/api/v1/batches/{id}";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(delete))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> axum::Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// Only a pending or cancelled batch without completed tasks goes.
    Errors = ErrorResponses::new(Access::Admin)
        .batch_id()
        .rules([
            DomainError::BatchNotFound,
            DomainError::BatchChangedConcurrently,
            DomainError::BatchNotDeletable {
                current_status: BatchStatus::Active,
                completed_count: 3,
            },
        ])
);

#[utoipa::path(
    delete,
    path = ROUTE,
    tag = "batches",
    operation_id = "delete_batch",
    summary = "Delete a batch",
    description = "Removes a pending or cancelled batch that has no completed task, with its \
        tasks: it disappears from every list and view, its tasks no longer count for the order \
        (which may take them again in a new batch), and its workstation's status follows. A \
        pending batch's runnable tasks are cancelled first, exactly as cancelling the batch \
        does, so a device recording one is told. Any other batch answers 409 with \
        `current_status` and `completed_count`: cancel or recall it instead. Deleting an \
        unknown or already deleted batch answers 404.",
    security(("bearer" = [])),
    params(BatchIdPath),
    responses(
        (status = 204, description = "Deleted."),
        Errors,
    ),
)]
async fn delete(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<BatchKind>,
) -> Result<StatusCode, ApiError> {
    let outbox_ids = delete_batch(&state.db, id).await?;
    state.publish_committed(&outbox_ids).await;
    Ok(StatusCode::NO_CONTENT)
}
