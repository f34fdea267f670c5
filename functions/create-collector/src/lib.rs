//! `POST /api/v1/data-collectors`: an admin creates a collector with a password of their own.
//! The statement lives in `keystone_store::collectors`.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use keystone_domain::DomainError;
use keystone_domain::collectors::{
    CreateCollectorBody, CreateCollectorRequest, MAX_COLLECTOR_TEXT, MAX_PASSWORD_BYTES,
    MIN_PASSWORD_CHARS,
};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{AdminAuth, ApiError, AppState, Json};
use keystone_store::collectors::{CollectorView, create_collector};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/data-collectors";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(create))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> axum::Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// A collector's rules.
    Errors = ErrorResponses::new(Access::Admin).json_body().rules([
        DomainError::MissingField("operator_id"),
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
        DomainError::UnknownOrganization,
        DomainError::OperatorIdTaken,
    ])
);

#[utoipa::path(
    post,
    path = ROUTE,
    tag = "people",
    operation_id = "create_collector",
    summary = "Create a data collector",
    description = "Creates a collector of an organization who logs in with `operator_id` \
        (unique among live collectors: 409 otherwise) and the `password` given — at least 8 \
        characters, stored as an argon2id hash; there is no default password. `status` is \
        `active` unless given (`inactive` and `on_leave` cannot log in). The answer never \
        carries the password or its hash.",
    security(("bearer" = [])),
    request_body(content = CreateCollectorBody, example = json!({
        "organization_id": "1", "name": "王五", "operator_id": "DC003",
        "password": "a-long-secret", "email": "dc003@example.com"
    })),
    responses(
        (status = 201, description = "The collector.", body = CollectorView,
            example = keystone_http::openapi::examples::collector),
        Errors,
    ),
)]
async fn create(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Json(body): Json<CreateCollectorBody>,
) -> Result<(StatusCode, JsonResponse<CollectorView>), ApiError> {
    let request = CreateCollectorRequest::validate(body)?;
    let hash = keystone_http::hash_new_password(request.password.clone()).await?;
    let view = create_collector(&state.db, &request, &hash).await?;
    Ok((StatusCode::CREATED, JsonResponse(view)))
}
