//! `POST /api/v1/batches/{id}/tasks` (SPEC §5.2): an admin sets the target live task count
//! of a batch's task groups. The rules and the transaction live in
//! `keystone_store::dispatch`; this crate only routes and translates.

use axum::extract::State;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use keystone_domain::{AdjustBatchBody, AdjustBatchRequest};
use keystone_http::extract::BatchKind;
use keystone_http::{AdminAuth, ApiError, AppState, Json, PathId};
use keystone_store::dispatch::AdjustBatchResponse;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches/{id}/tasks";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, post(adjust_batch))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

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
