//! `GET /api/v1/orders`: the admin console's order list, filtered and paged. The
//! read lives in `keystone_store::orders`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_domain::listing::Page;
use keystone_domain::orders::{OrderListFilter, OrderListParams};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, ListQuery};
use keystone_store::orders::list_orders;
use keystone_store::progress::OrderProgress;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/orders";

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
    tag = "orders",
    operation_id = "list_orders",
    summary = "List orders",
    description = "Live orders, newest first (then by id), in pages: `limit` 1–100 (default \
        50; more is refused), `offset` 0–100 000. Filters combine: `status` and `priority` take \
        comma-separated values of their sets (an unknown value is refused), \
        `organization_id`, `scene_id`, and `keyword`, which matches the order's, its scene's or \
        its organization's name anywhere, ignoring case, and ranks exact names first, then \
        names that start with it. `total` counts every order the filters match; `hasNext` and \
        `hasPrev` say whether pages follow or precede.",
    security(("bearer" = [])),
    params(OrderListParams),
    responses(
        (status = 200, description = "A page of order views.", body = Page<OrderProgress>,
            example = keystone_http::openapi::examples::order_page),
        Errors,
    ),
)]
async fn list(
    State(state): State<AppState>,
    _admin: AdminAuth,
    ListQuery(params): ListQuery<OrderListParams>,
) -> Result<JsonResponse<Page<OrderProgress>>, ApiError> {
    let filter = OrderListFilter::validate(params)?;
    Ok(JsonResponse(list_orders(&state.db, &filter).await?))
}
