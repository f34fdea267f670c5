//! `GET /api/v1/scenes`: the scenes the dispatch forms offer. The read lives in
//! `keystone_store::reference`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_domain::listing::Page;
use keystone_domain::reference::{ReferenceFilter, ReferenceListParams};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, ListQuery};
use keystone_store::reference::{SceneView, list_scenes};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/scenes";

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
    operation_id = "list_scenes",
    summary = "List scenes",
    description = "Live scenes by name, each with its live subscenes (what a task group's `subscene_id` may name), in pages (`limit` 1–100, default 50; `offset` 0–100 000). `factory_id` keeps one factory's scenes; `keyword` matches the scene's name, ignoring case.",
    security(("bearer" = [])),
    params(ReferenceListParams),
    responses(
        (status = 200, description = "A page of scenes.", body = Page<SceneView>,
            example = keystone_http::openapi::examples::scene_page),
        Errors,
    ),
)]
async fn list(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ListQuery(params): ListQuery<ReferenceListParams>,
) -> Result<JsonResponse<Page<SceneView>>, ApiError> {
    let filter = ReferenceFilter::validate(params)?;
    Ok(JsonResponse(list_scenes(&state.db, &filter).await?))
}
