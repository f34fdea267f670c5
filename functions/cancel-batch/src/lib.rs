//! `POST /api/v1/batches/{id}/cancel` (SPEC §5.11): an admin pulls work back from a
//! workstation. The transaction lives in `keystone_store::batch_cancel`; the recorder commands
//! it queues are published right after the commit.

use axum::extract::State;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use keystone_http::extract::BatchKind;
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::batch_cancel::{CancelBatchResponse, cancel_batch};

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches/{id}/cancel";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, post(cancel))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

/// Any request body is ignored: the call itself is the decision.
async fn cancel(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<BatchKind>,
) -> Result<JsonResponse<CancelBatchResponse>, ApiError> {
    let response = cancel_batch(&state.db, id).await?;
    state.publish_committed(&response.outbox_ids).await;
    Ok(JsonResponse(response))
}
