//! `POST /api/v1/auth/logout`: a collector ends their session on every device at once. The
//! statement lives in `keystone_store::sessions`.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{ApiError, AppState, CollectorAuth};
use keystone_store::sessions::log_out;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/auth/logout";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(logout))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// A collector's token that still stands.
    Errors = ErrorResponses::new(Access::Collector)
);

/// The 200 body of a logout.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogoutResponse {
    pub ok: bool,
}

/// Any request body is ignored.
#[utoipa::path(
    post,
    path = ROUTE,
    tag = "auth",
    operation_id = "log_out",
    summary = "Log out",
    description = "Ends every token the collector holds, on every device (each later call with \
        one answers 401 `session_ended`), and takes their workstation offline until they log in \
        again. Calling it again is harmless: the token it would need is already refused.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Logged out.", body = LogoutResponse, example = json!({"ok": true})),
        Errors,
    ),
)]
async fn logout(
    State(state): State<AppState>,
    collector: CollectorAuth,
) -> Result<JsonResponse<LogoutResponse>, ApiError> {
    log_out(&state.db, &collector.session).await?;
    Ok(JsonResponse(LogoutResponse { ok: true }))
}
