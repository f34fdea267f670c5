//! `POST /api/v1/orders/{id}/resume`: an admin resumes a paused order, finalizing it when it is already at its target. Any request body is ignored. The transaction lives in
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
pub const ROUTE: &str = "/api/v1/orders/{id}/resume";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(resume))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.12's rules.
    Errors = ErrorResponses::order_control(OrderControl::Resume, OrderStatus::Completed)
);

#[utoipa::path(
    post,
    path = ROUTE,
    tag = "orders",
    operation_id = "resume_order",
    summary = "Resume a paused order",
    description = "A paused order goes back to in progress (created if it has no completed task), and completes \
        and is finalized at once when it already reached its target. Resuming an order that is not \
        paused changes nothing.",
    security(("bearer" = [])),
    params(OrderIdPath),
    responses(
        (status = 200, description = "The order as `GET /api/v1/orders/{id}` shows it (unchanged when the call changed nothing).", body = OrderControlResponse, example = keystone_http::openapi::examples::order),
        Errors,
    ),
)]
async fn resume(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<OrderKind>,
) -> Result<JsonResponse<OrderControlResponse>, ApiError> {
    let command = OrderCommand::Resume;
    let response = control_order(&state.db, id, command).await?;
    state.publish_committed(&response.outbox_ids).await;
    Ok(JsonResponse(response))
}
