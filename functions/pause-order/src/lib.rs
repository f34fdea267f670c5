//! `POST /api/v1/orders/{id}/pause` (SPEC §5.12): an admin pauses an order: no auto-advance while paused. Any request body is ignored. The transaction lives in
//! `keystone_store::order_controls`, shared by every order control.

use axum::extract::State;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use keystone_http::extract::OrderKind;
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::order_controls::{OrderCommand, OrderControlResponse, control_order};

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/orders/{id}/pause";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, post(pause))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

async fn pause(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<OrderKind>,
) -> Result<JsonResponse<OrderControlResponse>, ApiError> {
    let command = OrderCommand::Pause;
    let response = control_order(&state.db, id, command).await?;
    Ok(JsonResponse(response))
}
