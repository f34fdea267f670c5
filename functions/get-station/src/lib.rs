//! `GET /api/v1/stations/{id}`: one station binding, current or not, with its history. The
//! read lives in `keystone_store::stations`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_http::extract::StationKind;
use keystone_http::openapi::{Access, ErrorResponses, StationIdPath};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::stations::{StationDetailView, get_station};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/stations/{id}";

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
    /// Which binding.
    Errors = ErrorResponses::new(Access::Admin)
        .station_id()
        .rules([DomainError::StationNotFound])
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "stations",
    operation_id = "get_station",
    summary = "Get a station binding and its history",
    description = "A binding, current or not: its robot, collector, status and open batches, \
        whether it is still current (`superseded_by` names the binding that replaced it), and \
        `bindings`, every binding of the same station newest first (at most 100 of \
        `binding_count`). An old binding shows the robot and collector it had, so the batches \
        that point at it can be traced to who produced them.",
    security(("bearer" = [])),
    params(StationIdPath),
    responses(
        (status = 200, description = "The binding.", body = StationDetailView,
            example = keystone_http::openapi::examples::station_rebound),
        Errors,
    ),
)]
async fn get(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<StationKind>,
) -> Result<JsonResponse<StationDetailView>, ApiError> {
    Ok(JsonResponse(get_station(&state.db, id).await?))
}
