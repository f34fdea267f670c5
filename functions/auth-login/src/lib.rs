//! `POST /api/v1/auth/login`: trades an account and password for a bearer token.
//!
//! Every mismatch — unknown account, no password set, wrong password, disabled collector —
//! answers the same 401 after the same amount of hashing work, so accounts cannot be
//! enumerated by message or timing.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_auth::password::{self, Credential};
use keystone_auth::{Principal, Role};
use keystone_domain::{DomainError, LoginBody, LoginRequest, session};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{ApiError, AppState, ClientAddress, Json};
use keystone_store::identity::{CollectorSummary, collector_credentials, upgrade_password_hash};
use keystone_store::login_throttle::{
    login_blocked_for, record_login_failure, record_login_success,
};
use keystone_store::sessions::resume_workstation;
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "POST";
pub const ROUTE: &str = "/api/v1/auth/login";

/// The routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(login))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.6's rules.
    Errors = ErrorResponses::new(Access::Public)
        .json_body()
        .rules([
            DomainError::MissingCredentials,
            DomainError::InvalidCredentials,
            DomainError::TooManyLoginAttempts {
                retry_after_secs: 30,
            },
        ])
);

/// The 200 body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub role: Role,
    pub collector: Option<CollectorSummary>,
}

/// Runs a hash verification off the async runtime.
async fn verify_blocking<T: Send + 'static>(
    check: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(check)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

#[utoipa::path(
    post,
    path = ROUTE,
    tag = "auth",
    operation_id = "log_in",
    summary = "Log in",
    description = "Exchanges an account (a collector's operator id, or the configured admin) and \
        its password for a bearer token. Any mismatch answers the same 401 in similar time, \
        whether the account exists or not. Failures are counted per account and per source \
        address: from an account's 10th consecutive failure (configurable up to the 20th) it is \
        blocked for a time that doubles with each further failure (1 s, 2 s, 4 s … up to 15 \
        minutes), and an address with 100 failures in 15 minutes is blocked until that window \
        ends; a blocked login answers 429 with `Retry-After` without looking at the password, \
        and a success clears the account's count. An old password hash is upgraded to the \
        current argon2id parameters on a successful login. A collector's workstation that a \
        logout took offline shows its status again (active with an active batch, else \
        inactive).",
    request_body(content = LoginBody, example = json!({"account": "DC001", "password": "keystone-demo"})),
    responses(
        (status = 200, description = "A bearer token and who it speaks for.", body = LoginResponse, example = json!({
            "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiIsImtpZCI6ImstNjlmZWVmZGVhZDQ5YjY3ZiJ9.eyJjb2xsZWN0b3JfaWQiOjEsIm9wZXJhdG9yX2lkIjoiREMwMDEiLCJyb2xlIjoiZGF0YV9jb2xsZWN0b3IifQ.signature",
            "token_type": "Bearer",
            "expires_in": 86400,
            "role": "data_collector",
            "collector": {
                "id": "1",
                "operator_id": "DC001",
                "name": "张三"
            }
        })),
        Errors,
    ),
)]
async fn login(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    Json(body): Json<LoginBody>,
) -> Result<JsonResponse<LoginResponse>, ApiError> {
    let LoginRequest { account, password } = LoginRequest::validate(body)?;
    let settings = state.login.clone();

    // Throttled before any password is looked at, the same for every account name, existing
    // or not.
    if let Some(wait) = login_blocked_for(&state.db, &account, source.as_deref()).await? {
        let retry_after_secs =
            u32::try_from(wait.as_millis().div_ceil(1000).max(1)).unwrap_or(u32::MAX);
        tracing::warn!(retry_after_secs, "login throttled");
        return Err(DomainError::TooManyLoginAttempts { retry_after_secs }.into());
    }

    // The same work on every path: one credentials read, then one bcrypt and one argon2id
    // verification (keystone_auth::password), whether the account is the admin, a collector
    // who may log in, one who may not, or nobody.
    let found = collector_credentials(&state.db, &account).await?;
    let admin = settings.admin.as_ref().filter(|a| a.username == account);
    let stored = found
        .as_ref()
        .filter(|c| c.status == session::ACTIVE)
        .and_then(|c| c.password_hash.clone());
    let expected = admin.map(|a| a.password.expose_secret().to_owned());
    let stored_hash = stored.clone();
    let (matched, upgraded_hash) = verify_blocking(move || {
        let credential = match (&expected, &stored) {
            (Some(expected), _) => Credential::Configured(expected),
            (None, Some(hash)) => Credential::StoredHash(hash),
            (None, None) => Credential::Nothing,
        };
        let matched = password::check_login(&password, credential).matched;
        // An old hash (bcrypt, other argon2id parameters) is replaced on a successful login,
        // while the password is at hand.
        let upgraded = match (&expected, &stored) {
            (None, Some(hash)) if matched && password::needs_rehash(hash) => {
                password::hash_current(&password).ok()
            }
            _ => None,
        };
        (matched, upgraded)
    })
    .await?;
    if !matched {
        record_login_failure(&state.db, &account, source.as_deref(), settings.throttle).await?;
        return Err(DomainError::InvalidCredentials.into());
    }
    record_login_success(&state.db, &account).await?;
    if let (Some(new), Some(old), Some(collector)) = (&upgraded_hash, &stored_hash, &found)
        && admin.is_none()
    {
        let upgraded = upgrade_password_hash(&state.db, collector.id, old, new).await?;
        tracing::info!(
            upgraded,
            "password hash upgraded to the current argon2id parameters"
        );
    }
    let (principal, collector) = match (admin, found) {
        (Some(admin), _) => (
            Principal::Admin {
                operator_id: admin.username.clone(),
            },
            None,
        ),
        (None, Some(collector)) => {
            let principal = Principal::Collector {
                collector_id: collector.id,
                operator_id: collector.operator_id.clone(),
                // After a revocation the token must be told apart from the revoked ones.
                issued_at: collector
                    .tokens_revoked_at
                    .map(session::first_valid_issue_second),
            };
            let summary = CollectorSummary {
                id: collector.id.to_string(),
                operator_id: collector.operator_id,
                name: collector.name,
            };
            (principal, Some(summary))
        }
        // A match implies the admin or a stored hash, which implies a found collector.
        (None, None) => return Err(DomainError::InvalidCredentials.into()),
    };
    // A collector back at work: the workstation a logout took offline shows its status again.
    if let Principal::Collector { collector_id, .. } = &principal {
        resume_workstation(&state.db, *collector_id).await?;
    }

    let lifetime = chrono::Duration::from_std(settings.token_ttl)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let access_token = state
        .jwt
        .keys()
        .await
        .issue(&principal, lifetime)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let role = match principal {
        Principal::Admin { .. } => Role::Admin,
        _ => Role::DataCollector,
    };
    Ok(JsonResponse(LoginResponse {
        access_token,
        token_type: "Bearer",
        expires_in: settings.token_ttl.as_secs(),
        role,
        collector,
    }))
}
