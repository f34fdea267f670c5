//! `POST /api/v1/me/station/end-break`: a collector's workstation comes back from a break. The
//! transaction lives in `keystone_store::sessions`.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::DomainError;
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{ApiError, AppState, CollectorAuth};
use keystone_store::sessions::{StationStatusView, end_break};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/me/station/end-break";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(station_end_break))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// A seated collector whose workstation is at work.
    Errors = ErrorResponses::new(Access::Collector).rules([
        DomainError::WorkstationNotAssigned,
        DomainError::WorkstationOffline,
    ])
);

/// Any request body is ignored.
#[utoipa::path(
    post,
    path = ROUTE,
    tag = "collector",
    operation_id = "end_break",
    summary = "End a break",
    description = "The collector's workstation comes back from a break: `active` while one of its batches is active, else `inactive`. Calling it when not on a break re-derives the same status and changes nothing else. A workstation taken offline by a logout answers 409: log in first.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The workstation and its status now.", body = StationStatusView,
            example = json!({"workstation_id": "1", "status": "active"})),
        Errors,
    ),
)]
async fn station_end_break(
    State(state): State<AppState>,
    collector: CollectorAuth,
) -> Result<JsonResponse<StationStatusView>, ApiError> {
    Ok(JsonResponse(
        end_break(&state.db, &collector.session).await?,
    ))
}
