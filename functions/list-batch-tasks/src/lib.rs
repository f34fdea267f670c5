//! `GET /api/v1/batches/{id}/tasks`: a batch's tasks, filtered and paged, for an
//! admin or the collector of the batch's workstation. The read lives in
//! `keystone_store::batch_lists`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_domain::batches::{BatchTaskFilter, BatchTaskListParams};
use keystone_domain::listing::Page;
use keystone_http::extract::BatchKind;
use keystone_http::openapi::{Access, BatchIdPath, ErrorResponses};
use keystone_http::{ApiError, AppState, ListQuery, PathId, StaffAuth};
use keystone_store::batch_lists::{BatchTaskItem, list_batch_tasks};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/batches/{id}/tasks";

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
    /// Who may read the batch, and the list's parameters.
    Errors = ErrorResponses::new(Access::Staff)
        .batch_id()
        .rules([
            DomainError::InvalidListParameter {
                parameter: "status",
                detail: "unknown value \"done\"".to_owned(),
            },
            DomainError::BatchNotOnWorkstation,
            DomainError::BatchNotFound,
        ])
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "batches",
    operation_id = "list_batch_tasks",
    summary = "A batch's tasks",
    description = "The batch's live tasks in the order they were created (then by id), in \
        pages (`limit` 1–100, default 50; `offset` 0–100 000). Filters combine: `status` \
        (comma-separated task statuses; an unknown value is refused), `sop_id`, \
        `subscene_id`. `total` comes from the batch's per-group counters. An admin reads any \
        batch; a data collector only the batches of their own workstation (403 otherwise).",
    security(("bearer" = [])),
    params(BatchIdPath, BatchTaskListParams),
    responses(
        (status = 200, description = "A page of the batch's tasks.", body = Page<BatchTaskItem>,
            example = keystone_http::openapi::examples::batch_task_page),
        Errors,
    ),
)]
async fn list(
    State(state): State<AppState>,
    staff: StaffAuth,
    PathId { id, .. }: PathId<BatchKind>,
    ListQuery(params): ListQuery<BatchTaskListParams>,
) -> Result<JsonResponse<Page<BatchTaskItem>>, ApiError> {
    let filter = BatchTaskFilter::validate(params)?;
    let collector = match &staff {
        StaffAuth::Collector(session) => Some(session),
        StaffAuth::Admin { .. } => None,
    };
    Ok(JsonResponse(
        list_batch_tasks(&state.db, id, collector, &filter).await?,
    ))
}
