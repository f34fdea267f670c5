//! `POST /api/v1/orders/{id}/pause`: an admin pauses an order: no auto-advance while paused. Any request body is ignored. The transaction lives in
//! `keystone_store::order_controls`, shared by every order control.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::{OrderControl, OrderStatus};
use keystone_http::extract::OrderKind;
use keystone_http::openapi::{ErrorResponses, OrderIdPath};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::order_controls::{OrderCommand, OrderControlResponse, control_order};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/orders/{id}/pause";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(pause))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.12's rules.
    Errors = ErrorResponses::order_control(OrderControl::Pause, OrderStatus::Completed)
);

#[utoipa::path(
    post,
    path = ROUTE,
    tag = "orders",
    operation_id = "pause_order",
    summary = "Pause an order",
    description = "A created or in-progress order becomes paused: completions are still accepted but do not \
        advance it. Pausing a paused order changes nothing.",
    security(("bearer" = [])),
    params(OrderIdPath),
    responses(
        (status = 200, description = "The order as `GET /api/v1/orders/{id}` shows it (unchanged when the call changed nothing).", body = OrderControlResponse, example = keystone_http::openapi::examples::order_paused),
        Errors,
    ),
)]
async fn pause(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<OrderKind>,
) -> Result<JsonResponse<OrderControlResponse>, ApiError> {
    let command = OrderCommand::Pause;
    let response = control_order(&state.db, id, command).await?;
    Ok(JsonResponse(response))
}
