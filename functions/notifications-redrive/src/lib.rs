//! `POST /api/v1/notifications/redrive`: puts dead-lettered and parked recorder
//! commands back in line, publishes them, and empties the dead-letter queue. Safe to repeat:
//! the consumer's delivery records keep each device command delivered at most once.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState};
use keystone_store::notifications::RedriveOutcome;
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

/// Any request body is ignored: the call itself is the decision.
#[utoipa::path(
    post,
    path = ROUTE,
    tag = "notifications",
    operation_id = "redrive_notifications",
    summary = "Retry dead-lettered and parked device commands",
    description = "Puts every dead-lettered device command back in line (whether its message \
        has already reached the dead-letter queue or not), and every command whose publishing \
        was refused too often, and publishes them again in each device's order; then empties \
        the dead-letter queue for at most about 12 seconds, sending any message that is not a \
        known device command back to the queue unchanged. A redriven `clear` whose device was \
        meanwhile sent a later command is not delivered (it shows `superseded`). The answer \
        says how many dead letters are left and whether the time budget cut the run short; \
        pressing it again moves the rest. Safe to repeat: each device command is delivered at \
        most once.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was put back, and what is left.", body = RedriveOutcome, example = json!({"dlq_messages_moved": 1, "outbox_rows_requeued": 1, "dead_letters_left": 0, "stopped_for_time": false})),
        Errors,
    ),
)]
async fn redrive(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> Result<JsonResponse<RedriveOutcome>, ApiError> {
    let redrive = state
        .redrive
        .as_ref()
        .ok_or_else(|| ApiError::Internal("no dead-letter queue is configured".into()))?;
    let outcome = redrive
        .redrive(&state.db)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot redrive the dead letters: {e}").into()))?;
    // Sent now where possible; whatever is not, the relay sends within a minute.
    state.publish_committed(&outcome.requeued_outbox_ids).await;
    tracing::info!(
        dlq_messages_moved = outcome.dlq_messages_moved,
        outbox_rows_requeued = outcome.outbox_rows_requeued,
        dead_letters_left = outcome.dead_letters_left,
        stopped_for_time = outcome.stopped_for_time,
        "notifications redriven"
    );
    Ok(JsonResponse(outcome))
}
