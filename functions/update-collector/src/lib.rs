//! `PATCH /api/v1/data-collectors/{id}`: an admin changes a collector; a status other than
//! active or a new password ends their tokens at once. The statement lives in
//! `keystone_store::collectors`.

use axum::Json as JsonResponse;
use axum::extract::State;
use keystone_domain::DomainError;
use keystone_domain::collectors::{
    COLLECTOR_PATCH_FIELDS, CollectorUpdateBody, CollectorUpdateRequest, MAX_COLLECTOR_TEXT,
    MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS,
};
use keystone_http::extract::CollectorKind;
use keystone_http::openapi::{Access, CollectorIdPath, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, Json, PathId};
use keystone_store::collectors::{CollectorView, update_collector};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "PATCH";
pub const ROUTE: &str = "/api/v1/data-collectors/{id}";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(update))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> axum::Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// What a collector edit may change.
    Errors = ErrorResponses::new(Access::Admin).collector_id().json_body().rules([
        DomainError::ImmutableField {
            field: "operator_id",
        },
        DomainError::MissingField("name"),
        DomainError::TextTooLong {
            field: "name",
            max: MAX_COLLECTOR_TEXT,
        },
        DomainError::PasswordTooShort {
            min: MIN_PASSWORD_CHARS,
        },
        DomainError::PasswordTooLong {
            max: MAX_PASSWORD_BYTES,
        },
        DomainError::InvalidEmail,
        DomainError::NothingToUpdate {
            fields: COLLECTOR_PATCH_FIELDS,
        },
        DomainError::DataCollectorNotFound,
    ])
);

#[utoipa::path(
    patch,
    path = ROUTE,
    tag = "people",
    operation_id = "update_collector",
    summary = "Change a data collector",
    description = "Changes the fields the body names: `name`, `email` (`null` clears it), \
        `status`, `metadata` (replaced whole) and `password` (at least 8 characters). A status \
        other than `active`, or a new password, ends every token the collector holds at once: \
        their next call answers 401 `session_ended` and they log in again. `operator_id` and \
        `organization_id` never change.",
    security(("bearer" = [])),
    params(CollectorIdPath),
    request_body(content = CollectorUpdateBody, example = json!({"status": "on_leave"})),
    responses(
        (status = 200, description = "The collector as it is now.", body = CollectorView,
            example = keystone_http::openapi::examples::collector_on_leave),
        Errors,
    ),
)]
async fn update(
    State(state): State<AppState>,
    _admin: AdminAuth,
    PathId { id, .. }: PathId<CollectorKind>,
    Json(body): Json<CollectorUpdateBody>,
) -> Result<JsonResponse<CollectorView>, ApiError> {
    let request = CollectorUpdateRequest::validate(body)?;
    let hash = match &request.password {
        Some(password) => Some(keystone_http::hash_new_password(password.clone()).await?),
        None => None,
    };
    let view = update_collector(&state.db, id, &request, hash.as_deref()).await?;
    tracing::info!(revoked = request.revokes_tokens(), "collector changed");
    Ok(JsonResponse(view))
}
