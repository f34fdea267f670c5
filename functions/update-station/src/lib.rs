//! `PATCH /api/v1/stations/{id}`: an admin renames a station, sets its status or metadata, or
//! rebinds its robot or collector. The statements live in `keystone_store::stations`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::stations::{
    MAX_STATION_NAME, STATION_PATCH_FIELDS, StationUpdateBody, StationUpdateRequest,
};
use keystone_domain::{CollectorStatus, DomainError, WorkstationStatus};
use keystone_http::extract::StationKind;
use keystone_http::openapi::{Access, ErrorResponses, StationIdPath};
use keystone_http::{AdminAuth, ApiError, AppState, Json, PathId};
use keystone_store::stations::{StationDetailView, update_station};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "PATCH";
pub const ROUTE: &str = "/api/v1/stations/{id}";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(update))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> axum::Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// What a station edit or rebind may change.
    Errors = ErrorResponses::new(Access::Admin).station_id().json_body().rules([
        DomainError::ImmutableField {
            field: "organization_id",
        },
        DomainError::MissingField("name"),
        DomainError::TextTooLong {
            field: "name",
            max: MAX_STATION_NAME,
        },
        DomainError::NothingToUpdate {
            fields: STATION_PATCH_FIELDS,
        },
        DomainError::UnknownCollector,
        DomainError::UnknownRobot,
        DomainError::StationNotFound,
        DomainError::StationSuperseded {
            superseded_by: Some("5".to_owned()),
        },
        DomainError::StationHasOpenBatches {
            open_batch_count: 2,
        },
        DomainError::CollectorNotActive {
            collector_status: CollectorStatus::Inactive,
        },
        DomainError::CollectorWithoutOrganization,
        DomainError::CollectorOrganizationMismatch,
        DomainError::RobotAlreadyBound {
            workstation_id: "3".to_owned(),
        },
        DomainError::CollectorAlreadyBound {
            workstation_id: "3".to_owned(),
        },
        DomainError::WorkstationStatusDerived {
            requested: WorkstationStatus::Active,
            derived_status: WorkstationStatus::Inactive,
        },
    ])
);

#[utoipa::path(
    patch,
    path = ROUTE,
    tag = "stations",
    operation_id = "update_station",
    summary = "Change or rebind a station",
    description = "Changes the fields the body names on the current binding. `name` and \
        `metadata` (replaced whole; `null` clears it) change in place. `status`: `break` and \
        `offline` are set as sent; `active` and `inactive` follow the station's batches, so \
        asking for one brings the station back and answers 409 `workstation_status_derived` \
        when the batches say the other. A `robot_id` or `data_collector_id` other than the \
        current one rebinds: the binding is kept as it was, no longer current, and a new \
        current binding (a new `id`) takes the new robot or collector with the same name, \
        organization and metadata. The new robot must be live and in no current binding; the \
        new collector `active`, of the station's organization and in no current binding. A \
        binding with pending or active batches cannot be rebound (409 with \
        `open_batch_count`), and a binding that is no longer current cannot be changed (409 \
        with `superseded_by`). The answer is the current binding with its history.",
    security(("bearer" = [])),
    params(StationIdPath),
    request_body(content = StationUpdateBody, example = json!({"robot_id": "4"})),
    responses(
        (status = 200, description = "The current binding.", body = StationDetailView,
            example = keystone_http::openapi::examples::station_rebound),
        Errors,
    ),
)]
async fn update(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<StationKind>,
    Json(body): Json<StationUpdateBody>,
) -> Result<JsonResponse<StationDetailView>, ApiError> {
    let request = StationUpdateRequest::validate(body)?;
    Ok(JsonResponse(update_station(&state.db, id, &request).await?))
}
