//! `PATCH /api/v1/orders/{id}` (SPEC §5.12): an admin changes an order's target, which may complete and finalize it, or run a completed order again. The transaction lives in
//! `keystone_store::order_controls`, shared by every order control.

use axum::extract::State;
use axum::routing::patch;
use axum::{Json as JsonResponse, Router};
use keystone_domain::{OrderTargetBody, OrderTargetRequest};
use keystone_http::extract::OrderKind;
use keystone_http::{AdminAuth, ApiError, AppState, Json, PathId};
use keystone_store::order_controls::{OrderCommand, OrderControlResponse, control_order};

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "PATCH";
pub const ROUTE: &str = "/api/v1/orders/{id}";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, patch(retarget))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

async fn retarget(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<OrderKind>,
    Json(body): Json<OrderTargetBody>,
) -> Result<JsonResponse<OrderControlResponse>, ApiError> {
    let command = OrderCommand::Retarget(OrderTargetRequest::validate(body)?);
    let response = control_order(&state.db, id, command).await?;
    state.publish_committed(&response.outbox_ids).await;
    Ok(JsonResponse(response))
}
