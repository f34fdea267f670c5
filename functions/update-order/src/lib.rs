//! `PATCH /api/v1/orders/{id}`: an admin changes an order's target, which may complete and finalize it, or run a completed order again. The transaction lives in
//! `keystone_store::order_controls`, shared by every order control.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::{DomainError, OrderControl, OrderStatus};
use keystone_domain::{OrderTargetBody, OrderTargetRequest};
use keystone_http::extract::OrderKind;
use keystone_http::openapi::{Access, ErrorResponses, OrderIdPath};
use keystone_http::{AdminAuth, ApiError, AppState, Json, PathId};
use keystone_store::order_controls::{OrderCommand, OrderControlResponse, control_order};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "PATCH";
pub const ROUTE: &str = "/api/v1/orders/{id}";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(retarget))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.12's rules for a new target.
    Errors = ErrorResponses::new(Access::Admin)
        .order_id()
        .json_body()
        .rules([
            DomainError::InvalidTargetCount { max: keystone_domain::MAX_TARGET_COUNT },
            DomainError::OrderNotFound,
            DomainError::TargetBelowCompleted { completed_count: 12, requested: 10 },
            DomainError::OrderControlNotAllowed {
                control: OrderControl::Retarget,
                current_status: OrderStatus::Cancelled,
            },
        ])
);

#[utoipa::path(
    patch,
    path = ROUTE,
    tag = "orders",
    operation_id = "update_order",
    summary = "Change an order's target",
    description = "Sets `target_count`, never below the completed count. An open order that \
        reaches the new target completes and is finalized at once; a completed order given a \
        larger target goes back to in progress.",
    security(("bearer" = [])),
    params(OrderIdPath),
    request_body(content = OrderTargetBody, example = json!({"target_count": 60})),
    responses(
        (status = 200, description = "The order as `GET /api/v1/orders/{id}` shows it (unchanged when the call changed nothing).", body = OrderControlResponse,
            example = keystone_http::openapi::examples::order_retargeted),
        Errors,
    ),
)]
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
