//! `GET /api/v1/orders/{id}` (SPEC §5.13): an order's figures and its batches by status, for
//! the admin's production dashboard. The read lives in `keystone_store::progress`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use keystone_http::extract::OrderKind;
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::progress::{OrderProgress, order_progress};

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/orders/{id}";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, get(order))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

async fn order(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<OrderKind>,
) -> Result<JsonResponse<OrderProgress>, ApiError> {
    Ok(JsonResponse(order_progress(&state.db, id).await?))
}
