//! The Lambda bootstrap every HTTP function's `main` calls.

use axum::Router;

use crate::{AppState, Config};

/// Starts tracing (JSON in Lambda when the function's log format says so; the runtime puts
/// the request id on every line's span), reads secrets and configuration and builds the state
/// once per container, then serves `app` until the runtime stops the process.
///
/// # Errors
/// Configuration errors at cold start, and runtime failures.
pub async fn serve(app: fn(AppState) -> Router) -> Result<(), lambda_http::Error> {
    serve_with(app, |state| async { Ok::<_, lambda_http::Error>(state) }).await
}

/// Like [`serve`], with a cold-start step that adds to the state (the outbox publisher of the
/// functions that finalize orders).
///
/// # Errors
/// Configuration errors at cold start, and runtime failures.
pub async fn serve_with<F, Fut, E>(
    app: fn(AppState) -> Router,
    extend: F,
) -> Result<(), lambda_http::Error>
where
    F: FnOnce(AppState) -> Fut,
    Fut: Future<Output = Result<AppState, E>>,
    E: Into<lambda_http::Error>,
{
    lambda_http::tracing::init_default_subscriber();
    let environment = keystone_secrets::resolve()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot read secrets"))?;
    let config = Config::from_lookup(|name| environment.get(name))
        .inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let mut state = AppState::from_config_with(&config, environment.database(&config.db)?);
    if let Some(source) = environment.jwt_secret_source() {
        state = state.with_rotating_jwt_keys(&config, source);
    }
    let state = extend(state).await.map_err(Into::into)?;
    lambda_http::run(app(state)).await
}
