//! `POST /api/v1/orders/{id}/finalize` (SPEC §5.4): an admin completes an order and it is
//! finalized with the same code the complete-tasks path uses. The transaction lives in
//! `keystone_store::dispatch`; this crate only routes and translates.

use axum::extract::State;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use keystone_http::extract::OrderKind;
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::dispatch::FinalizeOrderResponse;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/orders/{id}/finalize";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, post(finalize_order))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

/// The request body, if any, is ignored: the decision is the call itself.
async fn finalize_order(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id: order_id, .. }: PathId<OrderKind>,
) -> Result<JsonResponse<FinalizeOrderResponse>, ApiError> {
    let response = keystone_store::finalize_order(&state.db, order_id).await?;
    state.publish_committed(&response.outbox_ids).await;
    Ok(JsonResponse(response))
}
