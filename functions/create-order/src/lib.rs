//! `POST /api/v1/orders`: an admin creates an order, in status `created`. The
//! transaction lives in `keystone_store::orders`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use keystone_domain::orders::{CreateOrderBody, CreateOrderRequest};
use keystone_domain::{DomainError, IdempotencyKey};
use keystone_http::openapi::{Access, ErrorResponses, IdempotencyKeyHeader};
use keystone_http::{AdminAuth, ApiError, AppState, Json};
use keystone_store::orders::create_order;
use keystone_store::progress::OrderProgress;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/orders";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(create))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> axum::Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// The rules of a new order.
    Errors = ErrorResponses::new(Access::Admin)
        .json_body()
        .rules([
            DomainError::MissingField("name"),
            DomainError::OrderNameTooLong { max: keystone_domain::orders::MAX_ORDER_NAME },
            DomainError::InvalidTargetCount { max: keystone_domain::MAX_TARGET_COUNT },
            DomainError::UnknownOrganization,
            DomainError::UnknownScene,
            DomainError::InvalidIdempotencyKey,
            DomainError::OrderNameTaken,
            DomainError::IdempotencyKeyReused,
        ])
);

#[utoipa::path(
    post,
    path = ROUTE,
    tag = "orders",
    operation_id = "create_order",
    summary = "Create an order",
    description = "Creates an order of `target_count` tasks for an organization and a scene, in \
        status `created`; batches are then dispatched to it. `organization_id` and `scene_id` \
        may be strings or numbers. The name is trimmed, 1–200 characters, and unique among the \
        organization's live orders (409 otherwise). `priority` defaults to `normal`, \
        `metadata` to `{}`. With an `Idempotency-Key` (1–255 visible ASCII characters), a \
        repeat of the same request answers the first 201 and creates nothing; the same key \
        with another body is refused with 422.",
    security(("bearer" = [])),
    params(IdempotencyKeyHeader),
    request_body(content = CreateOrderBody, example = json!({
        "organization_id": "1", "scene_id": "1", "name": "Kitchen run 12", "target_count": 100,
        "priority": "high", "deadline": "2026-12-31T00:00:00Z", "metadata": {"customer": "acme"}
    })),
    responses(
        (status = 201, description = "The order as `GET /api/v1/orders/{id}` shows it.",
            body = OrderProgress, headers(("Idempotent-Replayed" = String, description = "`true` on the stored answer of an earlier request with the same `Idempotency-Key`; absent otherwise.")),
            example = keystone_http::openapi::examples::order),
        Errors,
    ),
)]
async fn create(
    State(state): State<AppState>,
    admin: AdminAuth,
    headers: HeaderMap,
    Json(body): Json<CreateOrderBody>,
) -> Result<Response, ApiError> {
    let request = CreateOrderRequest::validate(body)?;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()?;
    let stored = create_order(
        &state.db,
        &admin.operator_id,
        &request,
        idempotency_key.as_ref(),
    )
    .await?;
    Ok(keystone_http::stored_response(stored))
}
