//! `GET /api/v1/orders/{id}/notifications` (SPEC §5.8): what became of every recorder command
//! of an order, so an admin can see whether its devices were told. The read lives in
//! `keystone_store::notifications`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use keystone_http::extract::OrderKind;
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::notifications::{OrderNotificationsView, order_notifications};

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/orders/{id}/notifications";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, get(notifications))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

async fn notifications(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id: order_id, .. }: PathId<OrderKind>,
) -> Result<JsonResponse<OrderNotificationsView>, ApiError> {
    Ok(JsonResponse(
        order_notifications(&state.db, order_id).await?,
    ))
}
