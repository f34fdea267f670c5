//! `POST /api/v1/batches/{id}/complete-tasks` (SPEC §5.1): a data collector completes N
//! pending tasks of one task group. The rules and the transaction live in
//! `keystone_store::complete_tasks`; this crate only routes and translates.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use keystone_domain::{CompleteTasksBody, CompleteTasksRequest, IdempotencyKey};
use keystone_http::extract::BatchKind;
use keystone_http::{ApiError, AppState, CollectorAuth, Json, PathId};
use keystone_store::CompleteTaskGroup;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/batches/{id}/complete-tasks";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, post(complete_tasks))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

/// Extractors run in the order SPEC §5.1 checks: token, path id, body; then the body rules
/// and the idempotency key, then the transaction.
async fn complete_tasks(
    State(state): State<AppState>,
    collector: CollectorAuth,
    PathId { id: batch_id, .. }: PathId<BatchKind>,
    headers: HeaderMap,
    Json(body): Json<CompleteTasksBody>,
) -> Result<Response, ApiError> {
    let request = CompleteTasksRequest::validate(body)?;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()?;
    let command = CompleteTaskGroup {
        collector_id: collector.collector_id,
        batch_id,
        request,
        idempotency_key,
    };
    let stored = keystone_store::complete_task_group(&state.db, command).await?;
    state.publish_committed(&stored.outbox_ids).await;
    Ok(keystone_http::stored_response(stored))
}
