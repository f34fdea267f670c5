//! The state every handler receives, built once per container.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use keystone_auth::JwtKeys;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::{AdminCredentials, Config, ConfigError};

/// Shared, cheaply cloned handler state.
#[derive(Clone, Debug)]
pub struct AppState {
    pub pool: PgPool,
    pub jwt: Arc<JwtKeys>,
    pub login: Arc<LoginSettings>,
}

/// What the login function needs beyond the keys.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    pub admin: Option<AdminCredentials>,
    pub token_ttl: Duration,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            admin: None,
            token_ttl: Duration::from_secs(86_400),
        }
    }
}

impl AppState {
    pub fn new(pool: PgPool, jwt: JwtKeys) -> Self {
        Self {
            pool,
            jwt: Arc::new(jwt),
            login: Arc::new(LoginSettings::default()),
        }
    }

    #[must_use]
    pub fn with_login(mut self, login: LoginSettings) -> Self {
        self.login = Arc::new(login);
        self
    }

    /// Builds the pool and keys from configuration. The pool connects lazily, so a cold start
    /// does not wait for the database and a database blip does not kill the container.
    ///
    /// # Errors
    /// An unparsable `DATABASE_URL`.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let pool = pool_options(config).connect_lazy_with(connect_options(config)?);
        let jwt = JwtKeys::new(&config.jwt_secret, config.jwt_issuer.clone());
        Ok(Self::new(pool, jwt).with_login(LoginSettings {
            admin: config.admin.clone(),
            token_ttl: config.token_ttl,
        }))
    }
}

/// Connection settings: the URL plus a `lock_timeout`, so a request never waits forever on a
/// row lock (it answers 503 instead).
///
/// # Errors
/// An unparsable `DATABASE_URL`.
pub fn connect_options(config: &Config) -> Result<PgConnectOptions, ConfigError> {
    let lock_timeout = format!("{}ms", config.db_lock_timeout.as_millis());
    Ok(
        PgConnectOptions::from_str(config.database_url.expose_secret())
            .map_err(|e| ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: e.to_string(),
            })?
            .application_name("keystone")
            .options([("lock_timeout", lock_timeout.as_str())]),
    )
}

/// Pool sizing from configuration.
pub fn pool_options(config: &Config) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(config.db_acquire_timeout)
}
