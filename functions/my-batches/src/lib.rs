//! `GET /api/v1/me/batches` (SPEC §5.7): everything the collector's mobile page needs in one
//! call, read in a fixed number of statements by `keystone_store::identity::my_batches`.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::DomainError;
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{ApiError, AppState, CollectorAuth};
use keystone_store::identity::MyBatchesResponse;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/me/batches";

/// The routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(my_batches))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.7's rules.
    Errors = ErrorResponses {
        access: Access::Collector,
        path_id: None,
        json_body: false,
        rules: vec![DomainError::CollectorNotFound],
    }
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "collector",
    operation_id = "my_batches",
    summary = "My open batches",
    description = "Everything the collector's phone shows in one call: the collector, their \
        workstation, and its pending and active batches, newest first, with progress and task \
        groups, each with its handoff payload (SPEC §5.7, §8).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The collector's workstation and open batches.", body = MyBatchesResponse),
        Errors,
    ),
)]
async fn my_batches(
    State(state): State<AppState>,
    collector: CollectorAuth,
) -> Result<JsonResponse<MyBatchesResponse>, ApiError> {
    let response = keystone_store::identity::my_batches(&state.db, collector.collector_id)
        .await?
        .ok_or(DomainError::CollectorNotFound)?;
    Ok(JsonResponse(response))
}
