//! `GET /api/v1/orders/{id}`: an order's figures and its batches by status, for
//! the admin's production dashboard. The read lives in `keystone_store::progress`.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::DomainError;
use keystone_http::extract::OrderKind;
use keystone_http::openapi::{Access, ErrorResponses, OrderIdPath};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::progress::{OrderProgress, order_progress};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/orders/{id}";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(order))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.13's rules for orders.
    Errors = ErrorResponses::new(Access::Admin)
        .order_id()
        .rules([DomainError::OrderNotFound])
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "orders",
    operation_id = "get_order",
    summary = "An order's progress",
    description = "The order's status and figures: its target, live and completed tasks, what \
        may still be assigned, and its batches per status.",
    security(("bearer" = [])),
    params(OrderIdPath),
    responses(
        (status = 200, description = "The order.", body = OrderProgress, example = keystone_http::openapi::examples::order),
        Errors,
    ),
)]
async fn order(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<OrderKind>,
) -> Result<JsonResponse<OrderProgress>, ApiError> {
    Ok(JsonResponse(order_progress(&state.db, id).await?))
}
