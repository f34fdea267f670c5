//! `GET /api/v1/me/batches` (SPEC §5.7): everything the collector's mobile page needs in one
//! call, read in a fixed number of statements by `keystone_store::identity::my_batches`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use keystone_domain::DomainError;
use keystone_http::{ApiError, AppState, CollectorAuth};
use keystone_store::identity::MyBatchesResponse;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/me/batches";

/// The routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, get(my_batches))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

async fn my_batches(
    State(state): State<AppState>,
    collector: CollectorAuth,
) -> Result<JsonResponse<MyBatchesResponse>, ApiError> {
    let response = keystone_store::identity::my_batches(&state.db, collector.collector_id)
        .await?
        .ok_or(DomainError::CollectorNotFound)?;
    Ok(JsonResponse(response))
}
