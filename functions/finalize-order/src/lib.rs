//! `POST /api/v1/orders/{id}/finalize`: an admin completes an order and it is
//! finalized with the same code the complete-tasks path uses. The transaction lives in
//! `keystone_store::dispatch`; this crate only routes and translates.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::{DomainError, OrderStatus};
use keystone_http::extract::OrderKind;
use keystone_http::openapi::{Access, ErrorResponses, OrderIdPath};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::dispatch::FinalizeOrderResponse;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/orders/{id}/finalize";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(finalize_order))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.4's rules.
    Errors = ErrorResponses::new(Access::Admin)
        .order_id()
        .rules([
            DomainError::OrderNotFound,
            DomainError::OrderCancelled { order_status: OrderStatus::Cancelled },
        ])
);

/// The request body, if any, is ignored: the decision is the call itself.
#[utoipa::path(
    post,
    path = ROUTE,
    tag = "orders",
    operation_id = "finalize_order",
    summary = "Complete an order on an admin's decision",
    description = "Completes a created, in-progress or paused order and finalizes it: runnable \
        tasks of its open batches are cancelled, those batches completed, and devices recording \
        them told through the outbox. An order already completed answers \
        `\"finalized\": false` and changes nothing. A request body, if any, is ignored.",
    security(("bearer" = [])),
    params(OrderIdPath),
    responses(
        (status = 200, description = "The order, and what finalizing it changed.", body = FinalizeOrderResponse, example = json!({
            "order": {
                "id": "1",
                "status": "completed",
                "completed_count": 2,
                "target_count": 40
            },
            "finalized": true,
            "cancelled_task_count": 36,
            "completed_batch_ids": [
                "batch_20261124_093000_000_01_7a8b3d43",
                "batch_20261124_093000_000_02_b4abb622"
            ],
            "notifications_enqueued": 4
        })),
        Errors,
    ),
)]
async fn finalize_order(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id: order_id, .. }: PathId<OrderKind>,
) -> Result<JsonResponse<FinalizeOrderResponse>, ApiError> {
    let response = keystone_store::finalize_order(&state.db, order_id).await?;
    state.publish_committed(&response.outbox_ids).await;
    Ok(JsonResponse(response))
}
