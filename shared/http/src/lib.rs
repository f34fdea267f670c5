//! HTTP glue every function shares: the error-to-response mapping (the only place HTTP
//! statuses are chosen), request extractors, configuration, per-container state, tracing and
//! the Lambda bootstrap.

pub mod config;
pub mod error;
pub mod extract;
pub mod keys;
pub mod lambda;
pub mod openapi;
pub mod state;
pub mod telemetry;

pub use config::{Config, ConfigError};
pub use error::ApiError;
pub use extract::{
    AdminAuth, Authenticated, ClientAddress, CollectorAuth, Json, ListQuery, PathId, StaffAuth,
};
pub use keys::JwtKeyRing;
pub use state::AppState;

/// Largest request body accepted (SPEC §5): bigger bodies get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The layers every served router carries: the body limit, and JSON answers for unknown
/// routes and methods. Applied once to a function's routes, or once to the merged routes of
/// the local stack (axum refuses to merge two routers that both have a fallback).
pub fn finish_router<S: Clone + Send + Sync + 'static>(router: axum::Router<S>) -> axum::Router<S> {
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn(telemetry::track_request))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Renders a response stored by the transaction crate (a fresh answer or an idempotent
/// replay, which carries `Idempotent-Replayed: true`).
pub fn stored_response(stored: keystone_store::StoredResponse) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = axum::response::Response::new(axum::body::Body::from(stored.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if stored.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Hashes a new password with the current argon2id parameters off the async runtime: the
/// hashing is deliberately slow, and would otherwise stall every request of the container.
///
/// # Errors
/// [`ApiError::Internal`] when the hasher fails or its task dies.
pub async fn hash_new_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || keystone_auth::password::hash_current(&password))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?
        .map_err(|e| ApiError::Internal(Box::new(e)))
}
