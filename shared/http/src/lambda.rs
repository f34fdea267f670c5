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
    let function = function_name();
    if let Err(e) = crate::telemetry::install(function) {
        tracing::warn!(error = %e, "metrics are off");
    }
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
    // One invocation is one request: flush its metrics as it ends.
    let app = app(state).layer(axum::middleware::map_response(
        |response: axum::response::Response| async move {
            crate::telemetry::flush();
            response
        },
    ));
    lambda_http::run(app).await
}

/// The function's name for the metrics' `Function` dimension: the Lambda's own name, read
/// once (leaked: one small string per process).
pub fn function_name() -> &'static str {
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".to_owned());
    Box::leak(name.into_boxed_str())
}
