//! `POST /api/v1/batches`: an admin creates a batch and all its tasks at once.
//! The rules and the transaction live in `keystone_store::dispatch`; this crate only routes
//! and translates.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use keystone_domain::{CreateBatchBody, CreateBatchRequest, IdempotencyKey};
use keystone_domain::{DomainError, OrderStatus};
use keystone_http::openapi::{Access, ErrorResponses, IdempotencyKeyHeader};
use keystone_http::{AdminAuth, ApiError, AppState, Json};
use keystone_store::dispatch::CreateBatchResponse;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(create_batch))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.3's rules.
    Errors = ErrorResponses::new(Access::Admin)
        .json_body()
        .rules([
            DomainError::MissingField("order_id"),
            DomainError::MissingField("workstation_id"),
            DomainError::TaskGroupsEmpty,
            DomainError::InvalidTaskGroupAt { index: 1 },
            DomainError::InvalidQuantityAt { index: 1, min: 1 },
            DomainError::DuplicateTaskGroup { first: 0, second: 2, sop_id: 1, subscene_id: 1 },
            DomainError::TooManyTasks { requested: 1_500, max: 1_000 },
            DomainError::UnknownOrder,
            DomainError::UnknownWorkstation,
            DomainError::WorkstationOrganizationMismatch,
            DomainError::StationSuperseded { superseded_by: Some("5".to_owned()) },
            DomainError::UnknownSop { sop_id: 99 },
            DomainError::UnknownSubscene { subscene_id: 99 },
            DomainError::OrderClosedForBatches { order_status: OrderStatus::Completed },
            DomainError::OrderQuotaExceeded { target_count: 40, task_count: 38, remaining: 2, requested: 5 },
            DomainError::InvalidIdempotencyKey,
            DomainError::IdempotencyKeyReused,
        ])
);

#[utoipa::path(
    post,
    path = ROUTE,
    tag = "batches",
    operation_id = "create_batch",
    summary = "Create a batch with its tasks",
    description = "Creates a pending batch on a workstation and all its tasks atomically, \
        within the order's remaining assignable count. The workstation must be a current \
        binding (409 `station_superseded`, naming its successor, for one that was rebound or \
        unbound). With an `Idempotency-Key` (1–255 visible \
        ASCII characters), a repeat of the same request answers the first 201 and creates \
        nothing; the same key with another body is refused with 422.",
    security(("bearer" = [])),
    params(IdempotencyKeyHeader),
    request_body(content = CreateBatchBody, example = json!({"order_id": 1, "workstation_id": 1, "notes": "second shift", "task_groups": [{"sop_id": 1, "subscene_id": 1, "quantity": 2}]})),
    responses(
        (status = 201, description = "The batch created, with its tasks.", body = CreateBatchResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` on the stored answer of an earlier request with the same `Idempotency-Key`; absent otherwise.")),
            example = json!({
            "batch": {
                "id": "3",
                "batch_id": "batch_20261124_094500_120_00_3c9e1f20",
                "order_id": "1",
                "workstation_id": "1",
                "organization_id": "1",
                "name": "",
                "notes": "second shift",
                "metadata": null,
                "status": "pending",
                "task_count": 2,
                "completed_count": 0,
                "created_at": "2026-11-24T09:45:00.120000Z"
            },
            "tasks": [
                {
                    "id": "41",
                    "task_id": "task_20261124_094500_120_00_9a1b2c3d",
                    "sop_id": "1",
                    "subscene_id": "1",
                    "status": "pending",
                    "created_at": "2026-11-24T09:45:00.120000Z"
                },
                {
                    "id": "42",
                    "task_id": "task_20261124_094500_120_01_5e6f7a8b",
                    "sop_id": "1",
                    "subscene_id": "1",
                    "status": "pending",
                    "created_at": "2026-11-24T09:45:00.120000Z"
                }
            ]
        })),
        Errors,
    ),
)]
async fn create_batch(
    State(state): State<AppState>,
    admin: AdminAuth,
    headers: HeaderMap,
    Json(body): Json<CreateBatchBody>,
) -> Result<Response, ApiError> {
    let request = CreateBatchRequest::validate(body)?;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()?;
    let stored = keystone_store::create_batch(
        &state.db,
        request,
        &admin.operator_id,
        idempotency_key.as_ref(),
    )
    .await?;
    Ok(keystone_http::stored_response(stored))
}
