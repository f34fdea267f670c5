//! `GET /api/v1/data-collectors`: the admin console's collector list. The read lives in
//! `keystone_store::collectors`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_domain::collectors::{CollectorFilter, CollectorListParams};
use keystone_domain::listing::Page;
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, ListQuery};
use keystone_store::collectors::{CollectorView, list_collectors};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/data-collectors";

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
        parameter: "status",
        detail: "unknown value `retired`".to_owned(),
    }])
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "people",
    operation_id = "list_collectors",
    summary = "List data collectors",
    description = "Live data collectors, newest first (then by id), in pages (`limit` 1–100, \
        default 50; `offset` 0–100 000). Filters combine: `status` (comma-separated: `active`, \
        `inactive`, `on_leave`), `organization_id`, `keyword` (the name or the operator id, \
        ignoring case). Never a password or its hash.",
    security(("bearer" = [])),
    params(CollectorListParams),
    responses(
        (status = 200, description = "A page of collectors.", body = Page<CollectorView>,
            example = keystone_http::openapi::examples::collector_page),
        Errors,
    ),
)]
async fn list(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ListQuery(params): ListQuery<CollectorListParams>,
) -> Result<JsonResponse<Page<CollectorView>>, ApiError> {
    let filter = CollectorFilter::validate(params)?;
    Ok(JsonResponse(list_collectors(&state.db, &filter).await?))
}
