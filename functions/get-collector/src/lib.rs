//! `GET /api/v1/data-collectors/{id}`: one collector for the admin console. The read lives in
//! `keystone_store::collectors`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_http::extract::CollectorKind;
use keystone_http::openapi::{Access, CollectorIdPath, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::collectors::{CollectorView, get_collector};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/data-collectors/{id}";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(get))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> axum::Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// A live collector.
    Errors = ErrorResponses::new(Access::Admin)
        .collector_id()
        .rules([DomainError::DataCollectorNotFound])
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "people",
    operation_id = "get_collector",
    summary = "Get a data collector",
    description = "One live data collector; never a password or its hash. A deleted or unknown \
        collector answers 404.",
    security(("bearer" = [])),
    params(CollectorIdPath),
    responses(
        (status = 200, description = "The collector.", body = CollectorView,
            example = keystone_http::openapi::examples::collector),
        Errors,
    ),
)]
async fn get(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<CollectorKind>,
) -> Result<JsonResponse<CollectorView>, ApiError> {
    Ok(JsonResponse(get_collector(&state.db, id).await?))
}
