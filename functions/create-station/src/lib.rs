//! `POST /api/v1/stations`: an admin binds a robot and a collector into a station. The
//! statements live in `keystone_store::stations`.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use keystone_domain::stations::{CreateStationBody, CreateStationRequest, MAX_STATION_NAME};
use keystone_domain::{CollectorStatus, DomainError};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, Json};
use keystone_store::stations::{StationDetailView, create_station};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/stations";

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
    /// A binding's rules.
    Errors = ErrorResponses::new(Access::Admin).json_body().rules([
        DomainError::MissingField("robot_id"),
        DomainError::TextTooLong {
            field: "name",
            max: MAX_STATION_NAME,
        },
        DomainError::UnknownCollector,
        DomainError::UnknownRobot,
        DomainError::CollectorNotActive {
            collector_status: CollectorStatus::OnLeave,
        },
        DomainError::CollectorWithoutOrganization,
        DomainError::RobotAlreadyBound {
            workstation_id: "2".to_owned(),
        },
        DomainError::CollectorAlreadyBound {
            workstation_id: "2".to_owned(),
        },
    ])
);

#[utoipa::path(
    post,
    path = ROUTE,
    tag = "stations",
    operation_id = "create_station",
    summary = "Bind a robot and a collector",
    description = "Makes a station of a live robot and an `active` data collector. The station \
        belongs to the collector's organization (a collector without one answers 409) and to the \
        robot's factory, starts `inactive`, and is named after the robot's device and the \
        collector's operator id unless `name` is given. A robot or a collector already in a \
        current binding answers 409 `robot_already_bound` or `data_collector_already_bound` with \
        that binding's `workstation_id`; unbind it or rebind it first. A retried bind therefore \
        answers 409 naming the station the first one made.",
    security(("bearer" = [])),
    request_body(content = CreateStationBody, example = json!({
        "robot_id": "2", "data_collector_id": "2", "name": "WS-02 AxonArm",
        "metadata": {"bench": "A3"}
    })),
    responses(
        (status = 201, description = "The new binding.", body = StationDetailView,
            example = keystone_http::openapi::examples::station_detail),
        Errors,
    ),
)]
async fn create(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Json(body): Json<CreateStationBody>,
) -> Result<(StatusCode, JsonResponse<StationDetailView>), ApiError> {
    let request = CreateStationRequest::validate(body)?;
    let view = create_station(&state.db, &request).await?;
    Ok((StatusCode::CREATED, JsonResponse(view)))
}
