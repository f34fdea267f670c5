//! `GET /api/v1/orders/{id}/notifications`: what became of every recorder command
//! of an order, so an admin can see whether its devices were told. The read lives in
//! `keystone_store::notifications`.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::DomainError;
use keystone_http::extract::OrderKind;
use keystone_http::openapi::{Access, ErrorResponses, OrderIdPath};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::notifications::{OrderNotificationsView, order_notifications};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/orders/{id}/notifications";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(notifications))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.8's rules.
    Errors = ErrorResponses::new(Access::Admin)
        .order_id()
        .rules([DomainError::OrderNotFound])
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "notifications",
    operation_id = "order_notifications",
    summary = "What became of an order's device commands",
    description = "Every recorder command the order caused, oldest first, with its state \
        (`pending`, `published`, `held_back`, `retrying`, `delivered`, `dead_lettered`, `superseded`, `parked`) and a \
        count per state.",
    security(("bearer" = [])),
    params(OrderIdPath),
    responses(
        (status = 200, description = "The order's recorder commands.", body = OrderNotificationsView, example = json!({
            "order_id": "1",
            "summary": {
                "pending": 0,
                "published": 0,
                "retrying": 0,
                "delivered": 1,
                "dead_lettered": 0,
                "parked": 0
            },
            "notifications": [
                {
                    "notification_id": "order:1:task:task_20261124_093000_000_34_ee620998:cancel",
                    "action": "cancel",
                    "device_id": "axon-arm-01",
                    "task_id": "task_20261124_093000_000_34_ee620998",
                    "batch_id": "batch_20261124_093000_000_02_b4abb622",
                    "state": "delivered",
                    "publish_attempts": 1,
                    "delivery_attempts": 1,
                    "last_error": null,
                    "created_at": "2026-11-24T09:50:01.719763Z",
                    "published_at": "2026-11-24T09:50:01.748945Z",
                    "delivered_at": "2026-11-24T09:50:01.785344Z"
                }
            ]
        })),
        Errors,
    ),
)]
async fn notifications(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id: order_id, .. }: PathId<OrderKind>,
) -> Result<JsonResponse<OrderNotificationsView>, ApiError> {
    Ok(JsonResponse(
        order_notifications(&state.db, order_id).await?,
    ))
}
