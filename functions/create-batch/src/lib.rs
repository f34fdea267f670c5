//! `POST /api/v1/batches` (SPEC §5.3): an admin creates a batch and all its tasks at once.
//! The rules and the transaction live in `keystone_store::dispatch`; this crate only routes
//! and translates.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use keystone_domain::{CreateBatchBody, CreateBatchRequest};
use keystone_http::{AdminAuth, ApiError, AppState, Json};
use keystone_store::dispatch::CreateBatchResponse;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, post(create_batch))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

async fn create_batch(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Json(body): Json<CreateBatchBody>,
) -> Result<(StatusCode, JsonResponse<CreateBatchResponse>), ApiError> {
    let request = CreateBatchRequest::validate(body)?;
    let response = keystone_store::create_batch(&state.db, request).await?;
    Ok((StatusCode::CREATED, JsonResponse(response)))
}
