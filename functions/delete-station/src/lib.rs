//! `DELETE /api/v1/stations/{id}`: an admin unbinds a station; the binding is kept, no longer
//! current. The statements live in `keystone_store::stations`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_http::extract::StationKind;
use keystone_http::openapi::{Access, ErrorResponses, StationIdPath};
use keystone_http::{AdminAuth, ApiError, AppState, PathId};
use keystone_store::stations::{StationDetailView, unbind_station};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "DELETE";
pub const ROUTE: &str = "/api/v1/stations/{id}";

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
    /// Only a binding without open batches is unbound.
    Errors = ErrorResponses::new(Access::Admin).station_id().rules([
        DomainError::StationNotFound,
        DomainError::StationSuperseded {
            superseded_by: Some("5".to_owned()),
        },
        DomainError::StationHasOpenBatches {
            open_batch_count: 2,
        },
    ])
);

#[utoipa::path(
    delete,
    path = ROUTE,
    tag = "stations",
    operation_id = "delete_station",
    summary = "Unbind a station",
    description = "Ends a current binding: its robot and collector are free to be bound again, \
        the collector's phone has no workstation any more, and the binding stays readable with \
        its batches (`is_current` false, `superseded_at` set). A binding with pending or active \
        batches answers 409 with `open_batch_count`: cancel, recall or finish them first. \
        Unbinding an already unbound binding answers it again, unchanged; a binding that was \
        rebound answers 409 with `superseded_by`, the binding to unbind instead.",
    security(("bearer" = [])),
    params(StationIdPath),
    responses(
        (status = 200, description = "The binding, no longer current.", body = StationDetailView,
            example = keystone_http::openapi::examples::station_unbound),
        Errors,
    ),
)]
async fn delete(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<StationKind>,
) -> Result<JsonResponse<StationDetailView>, ApiError> {
    Ok(JsonResponse(unbind_station(&state.db, id).await?))
}
