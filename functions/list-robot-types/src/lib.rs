//! `GET /api/v1/robot-types`: the robot types the dispatch forms offer. The read lives in
//! `keystone_store::reference`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_domain::listing::Page;
use keystone_domain::reference::{ReferenceFilter, ReferenceListParams};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, ListQuery};
use keystone_store::reference::{RobotTypeView, list_robot_types};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/robot-types";

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
    operation_id = "list_robot_types",
    summary = "List robot types",
    description = "Live robot types by name, with the workflow their capabilities choose (`axon` when they require the Axon recorder, else `external_device`), in pages (`limit` 1–100, default 50; `offset` 0–100 000). `keyword` matches the name or the model, ignoring case.",
    security(("bearer" = [])),
    params(ReferenceListParams),
    responses(
        (status = 200, description = "A page of robot types.", body = Page<RobotTypeView>,
            example = keystone_http::openapi::examples::robot_type_page),
        Errors,
    ),
)]
async fn list(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ListQuery(params): ListQuery<ReferenceListParams>,
) -> Result<JsonResponse<Page<RobotTypeView>>, ApiError> {
    let filter = ReferenceFilter::validate(params)?;
    Ok(JsonResponse(list_robot_types(&state.db, &filter).await?))
}
