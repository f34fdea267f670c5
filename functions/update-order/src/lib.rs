//! `PATCH /api/v1/orders/{id}`: an admin changes an order's target, which may complete and finalize it, or run a completed order again. The transaction lives in
//! `keystone_store::order_controls`, shared by every order control.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::orders::{
    ORDER_PATCH_FIELDS, ORDER_STATUS_RULE, OrderUpdateBody, OrderUpdateRequest,
};
use keystone_domain::{DomainError, OrderControl, OrderStatus};
use keystone_http::extract::OrderKind;
use keystone_http::openapi::{Access, ErrorResponses, OrderIdPath};
use keystone_http::{AdminAuth, ApiError, AppState, Json, PathId};
use keystone_store::order_controls::{OrderCommand, OrderControlResponse, update_order};
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
            DomainError::NothingToUpdate { fields: ORDER_PATCH_FIELDS },
            DomainError::StatusNotPatchable { rule: ORDER_STATUS_RULE },
            DomainError::ImmutableField { field: "scene_id" },
            DomainError::MissingField("name"),
            DomainError::OrderNameTooLong { max: keystone_domain::orders::MAX_ORDER_NAME },
            DomainError::OrderNameTaken,
        ])
);

#[utoipa::path(
    patch,
    path = ROUTE,
    tag = "orders",
    operation_id = "update_order",
    summary = "Change an order's target, name, priority, deadline or metadata",
    description = "Changes the fields the body names, in one transaction. `target_count` is \
        never below the completed count; an open order that reaches the new target completes \
        and is finalized at once, a completed order given a larger target goes back to in \
        progress, and a cancelled order keeps its target (409). `name` (trimmed, 1–200 \
        characters, unique among the organization's live orders), `priority`, `deadline` \
        (`null` clears it) and `metadata` (replaced whole) may change in any status. The status \
        moves only through pause, resume, cancel and finalize (a `status` field is refused), \
        and an order keeps its scene and organization.",
    security(("bearer" = [])),
    params(OrderIdPath),
    request_body(content = OrderUpdateBody, example = json!({"target_count": 60, "priority": "urgent", "deadline": null})),
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
    Json(body): Json<OrderUpdateBody>,
) -> Result<JsonResponse<OrderControlResponse>, ApiError> {
    let request = OrderUpdateRequest::validate(body)?;
    let command = request.target.map(OrderCommand::Retarget);
    let response = update_order(&state.db, id, command, &request.details).await?;
    state.publish_committed(&response.outbox_ids).await;
    Ok(JsonResponse(response))
}
