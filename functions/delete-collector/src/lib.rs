//! `DELETE /api/v1/data-collectors/{id}`: an admin removes a collector who has no station. The
//! statement lives in `keystone_store::collectors`.

use axum::extract::State;
use axum::http::StatusCode;
use keystone_domain::DomainError;
use keystone_http::extract::CollectorKind;
use keystone_http::openapi::{Access, CollectorIdPath, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::collectors::delete_collector;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "DELETE";
pub const ROUTE: &str = "/api/v1/data-collectors/{id}";

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
    /// Only a collector without a station goes.
    Errors = ErrorResponses::new(Access::Admin).collector_id().rules([
        DomainError::DataCollectorNotFound,
        DomainError::CollectorHasStation {
            workstation_id: "1".to_owned(),
        },
    ])
);

#[utoipa::path(
    delete,
    path = ROUTE,
    tag = "people",
    operation_id = "delete_collector",
    summary = "Delete a data collector",
    description = "Removes a collector who has no workstation: every token they hold ends at \
        once, they disappear from every list, and their operator id is free again. A collector \
        still bound to a workstation answers 409 with its `workstation_id`: unbind them first. \
        Deleting an unknown or already deleted collector answers 404.",
    security(("bearer" = [])),
    params(CollectorIdPath),
    responses(
        (status = 204, description = "Deleted."),
        Errors,
    ),
)]
async fn delete(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<CollectorKind>,
) -> Result<StatusCode, ApiError> {
    delete_collector(&state.db, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
