//! `POST /api/v1/notifications/redrive` (SPEC §5.9): puts parked outbox rows back in line and
//! dead-lettered messages back on the queue. Safe to repeat: the consumer's delivery records
//! keep each device command delivered at most once.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState};
use keystone_store::notifications::requeue_parked;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/notifications/redrive";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(redrive))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.9's rules: only the token's.
    Errors = ErrorResponses::new(Access::Admin)
);

/// The 200 body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RedriveResponse {
    pub dlq_messages_moved: u64,
    pub outbox_rows_requeued: u64,
}

/// Any request body is ignored: the call itself is the decision.
#[utoipa::path(
    post,
    path = ROUTE,
    tag = "notifications",
    operation_id = "redrive_notifications",
    summary = "Retry dead-lettered and parked device commands",
    description = "Moves dead-lettered messages back onto the queue and puts parked outbox \
        rows back in line. Safe to repeat: each device command is still delivered at most once \
        (SPEC §5.9).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "How many messages and rows were put back.", body = RedriveResponse, example = json!({"dlq_messages_moved": 1, "outbox_rows_requeued": 0})),
        Errors,
    ),
)]
async fn redrive(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> Result<JsonResponse<RedriveResponse>, ApiError> {
    let outbox_rows_requeued = requeue_parked(&state.db).await?;
    let redrive = state
        .redrive
        .as_ref()
        .ok_or_else(|| ApiError::Internal("no dead-letter queue is configured".into()))?;
    let dlq_messages_moved = redrive.redrive().await.map_err(|e| {
        ApiError::Internal(format!("cannot move the dead letters back: {e}").into())
    })?;
    tracing::info!(
        dlq_messages_moved,
        outbox_rows_requeued,
        "notifications redriven"
    );
    Ok(JsonResponse(RedriveResponse {
        dlq_messages_moved,
        outbox_rows_requeued,
    }))
}
