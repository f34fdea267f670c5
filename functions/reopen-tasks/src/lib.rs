//! `POST /api/v1/batches/{id}/reopen-tasks` (SPEC §5.10): undo a mistaken completion, for an
//! admin or the collector of the batch's workstation. The rules and the transaction live in
//! `keystone_store::reopen`; this crate only routes and translates.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use keystone_domain::{
    CompleteTasksBody, CompleteTasksRequest, IdempotencyKey, ReopenTasksRequest,
};
use keystone_http::extract::BatchKind;
use keystone_http::{ApiError, AppState, Json, PathId, StaffAuth};
use keystone_store::reopen::{ReopenTasks, Reopener, reopen_tasks};

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches/{id}/reopen-tasks";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, post(reopen))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

/// The body has complete-tasks' shape and rules (quantity >= 1, defaulting to 1; a positive
/// group), checked in the same order: token, path id, body, idempotency key.
async fn reopen(
    State(state): State<AppState>,
    staff: StaffAuth,
    PathId { id: batch_id, .. }: PathId<BatchKind>,
    headers: HeaderMap,
    Json(body): Json<CompleteTasksBody>,
) -> Result<Response, ApiError> {
    let request = ReopenTasksRequest(CompleteTasksRequest::validate(body)?);
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()?;
    let by = match staff {
        StaffAuth::Admin { operator_id } => Reopener::Admin { operator_id },
        StaffAuth::Collector { collector_id } => Reopener::Collector { collector_id },
    };
    let command = ReopenTasks {
        by,
        batch_id,
        request,
        idempotency_key,
    };
    let stored = reopen_tasks(&state.db, command).await?;
    Ok(keystone_http::stored_response(stored))
}
