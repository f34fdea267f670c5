//! `PATCH /api/v1/batches/{id}`: an admin renames a batch, changes its notes or
//! metadata, or cancels it the way Keystone's clients do (`{"status":"cancelled"}`). The
//! transaction lives in `keystone_store::batch_controls`; the recorder commands a cancel queues
//! are published right after the commit.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::batches::{
    BATCH_PATCH_FIELDS, BATCH_STATUS_RULE, BatchUpdateBody, BatchUpdateRequest,
};
use keystone_domain::{BatchStatus, DomainError};
use keystone_http::extract::BatchKind;
use keystone_http::openapi::{Access, BatchIdPath, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, Json, PathId};
use keystone_store::batch_controls::{CancelBatchResponse, update_batch};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "PATCH";
pub const ROUTE: &str = "/api/v1/batches/{id}";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(update))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// What a batch edit may change, and the cancel rules.
    Errors = ErrorResponses::new(Access::Admin)
        .batch_id()
        .json_body()
        .rules([
            DomainError::StatusNotPatchable { rule: BATCH_STATUS_RULE },
            DomainError::ImmutableField { field: "workstation_id" },
            DomainError::NothingToUpdate { fields: BATCH_PATCH_FIELDS },
            DomainError::BatchNotFound,
            DomainError::BatchChangedConcurrently,
            DomainError::BatchNotCancellable { current_status: BatchStatus::Completed },
        ])
);

#[utoipa::path(
    patch,
    path = ROUTE,
    tag = "batches",
    operation_id = "update_batch",
    summary = "Change a batch's name, notes or metadata, or cancel it",
    description = "Changes the fields the body names, in one transaction: `name` (trimmed), \
        `notes` and `metadata` (replaced whole; `null` clears either) in any status. \
        `\"status\": \"cancelled\"` cancels the batch exactly as `POST \
        /api/v1/batches/{id}/cancel` does — its runnable tasks are cancelled, devices recording \
        them are told, completed tasks stay — together with any edit in the same body; a batch \
        that cannot be cancelled (completed or recalled) answers 409 and keeps the edit unmade \
        too. Any other status is refused: a batch is recalled with `POST \
        /api/v1/batches/{id}/recall` and otherwise moves with its tasks. Order, workstation, \
        organization and public id never change. The answer is the cancel answer; `cancelled` \
        is true only when this call cancelled the batch.",
    security(("bearer" = [])),
    params(BatchIdPath),
    request_body(content = BatchUpdateBody, example = json!({"name": "Kitchen, morning shift", "notes": "Bottles on the left shelf", "metadata": {"shift": "morning"}})),
    responses(
        (status = 200, description = "The batch as it is now, and what a cancel changed.", body = CancelBatchResponse,
            example = keystone_http::openapi::examples::batch_updated),
        Errors,
    ),
)]
async fn update(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<BatchKind>,
    Json(body): Json<BatchUpdateBody>,
) -> Result<JsonResponse<CancelBatchResponse>, ApiError> {
    let request = BatchUpdateRequest::validate(body)?;
    let response = update_batch(&state.db, id, &request).await?;
    state.publish_committed(&response.outbox_ids).await;
    Ok(JsonResponse(response))
}
