//! `GET /api/v1/stations`: the stations the dispatch forms offer. The read lives in
//! `keystone_store::reference`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_domain::listing::Page;
use keystone_domain::reference::{StationFilter, StationListParams};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, ListQuery};
use keystone_store::reference::{StationView, list_stations};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/stations";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(list))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> axum::Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// The list's parameters.
    Errors = ErrorResponses::new(Access::Admin).rules([DomainError::InvalidListParameter {
        parameter: "limit",
        detail: "must be between 1 and 100".to_owned(),
    }])
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "reference data",
    operation_id = "list_stations",
    summary = "List stations",
    description = "Workstations with their current binding: robot, device, robot type and the workflow it chooses, collector, and how many batches are pending or active on each — what the create-batch form picks a workstation from. Newest first (then by id), in pages (`limit` 1–100, default 50; `offset` 0–100 000). Filters combine: `status` (comma-separated workstation statuses), `organization_id`, `factory_id`, `robot_type_id`, `device_id` and `collector_operator_id` (exact), `keyword` (the workstation's name, ignoring case).",
    security(("bearer" = [])),
    params(StationListParams),
    responses(
        (status = 200, description = "A page of stations.", body = Page<StationView>,
            example = keystone_http::openapi::examples::station_page),
        Errors,
    ),
)]
async fn list(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ListQuery(params): ListQuery<StationListParams>,
) -> Result<JsonResponse<Page<StationView>>, ApiError> {
    let filter = StationFilter::validate(params)?;
    Ok(JsonResponse(list_stations(&state.db, &filter).await?))
}
