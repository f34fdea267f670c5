//! `GET /api/v1/batches`: the admin console's batch list, filtered and paged.
//! The read lives in `keystone_store::batch_lists`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_domain::batches::{BatchFilter, BatchListParams};
use keystone_domain::listing::Page;
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, ListQuery};
use keystone_store::batch_lists::{BatchListItem, list_batches};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/batches";

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
        detail: "unknown value \"done\"".to_owned(),
    }])
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "batches",
    operation_id = "list_batches",
    summary = "List batches",
    description = "Live batches, newest first (then by id), in pages (`limit` 1–100, default \
        50; `offset` 0–100 000), each with its order's and workstation's names, the device and \
        collector of the workstation, and its task figures. Filters combine: `order_id`, \
        `workstation_id`, `organization_id`, `status` (comma-separated batch statuses; an \
        unknown value is refused), `batch_id` (the public `batch_…` id), `device_id` and \
        `collector_operator_id` (exact).",
    security(("bearer" = [])),
    params(BatchListParams),
    responses(
        (status = 200, description = "A page of batches.", body = Page<BatchListItem>,
            example = keystone_http::openapi::examples::batch_page),
        Errors,
    ),
)]
async fn list(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ListQuery(params): ListQuery<BatchListParams>,
) -> Result<JsonResponse<Page<BatchListItem>>, ApiError> {
    let filter = BatchFilter::validate(params)?;
    Ok(JsonResponse(list_batches(&state.db, &filter).await?))
}
