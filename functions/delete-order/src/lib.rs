//! `DELETE /api/v1/orders/{id}`: an admin removes an order nothing was dispatched
//! to. The statement lives in `keystone_store::orders`.

use axum::extract::State;
use axum::http::StatusCode;
use keystone_domain::DomainError;
use keystone_http::extract::OrderKind;
use keystone_http::openapi::{Access, ErrorResponses, OrderIdPath};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::orders::delete_order;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "DELETE";
pub const ROUTE: &str = "/api/v1/orders/{id}";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(delete))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> axum::Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// Only an order without batches goes.
    Errors = ErrorResponses::new(Access::Admin)
        .order_id()
        .rules([
            DomainError::OrderNotFound,
            DomainError::OrderHasBatches { batch_count: 2 },
        ])
);

#[utoipa::path(
    delete,
    path = ROUTE,
    tag = "orders",
    operation_id = "delete_order",
    summary = "Delete an order",
    description = "Removes an order that has no live batch (and so no task): it disappears from \
        every list and view, and its name is free again. An order with batches answers 409 \
        with `batch_count`: cancel or finalize it instead. Deleting an unknown or already \
        deleted order answers 404.",
    security(("bearer" = [])),
    params(OrderIdPath),
    responses(
        (status = 204, description = "Deleted."),
        Errors,
    ),
)]
async fn delete(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<OrderKind>,
) -> Result<StatusCode, ApiError> {
    delete_order(&state.db, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
