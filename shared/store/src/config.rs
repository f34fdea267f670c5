//! Database settings from the environment, shared by every function (HTTP or not).

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Why configuration could not be loaded; names the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Reads an optional number, or `default` when unset or empty.
///
/// # Errors
/// [`ConfigError::Invalid`] for anything that is not a non-negative integer.
pub fn number(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    lookup(name)
        .filter(|v| !v.is_empty())
        .map_or(Ok(default), |v| {
            v.parse()
                .map_err(|e: std::num::ParseIntError| ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                })
        })
}

/// Reads a required, non-empty variable.
///
/// # Errors
/// [`ConfigError::Missing`].
pub fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    lookup(name)
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: SecretString,
    /// Connections per container. Lambda runs one request at a time per container, so a
    /// couple suffice; RDS Proxy multiplexes them.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// How long a statement may wait for a row lock before the request answers 503.
    pub lock_timeout: Duration,
}

impl DbConfig {
    /// Reads `DATABASE_URL`, `DB_MAX_CONNECTIONS`, `DB_ACQUIRE_TIMEOUT_MS`, `DB_LOCK_TIMEOUT_MS`.
    ///
    /// # Errors
    /// The first missing or invalid variable.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let max_connections =
            u32::try_from(number(lookup, "DB_MAX_CONNECTIONS", 2)?).map_err(|e| {
                ConfigError::Invalid {
                    name: "DB_MAX_CONNECTIONS",
                    reason: e.to_string(),
                }
            })?;
        Ok(Self {
            url: SecretString::from(required(lookup, "DATABASE_URL")?),
            max_connections: max_connections.max(1),
            acquire_timeout: Duration::from_millis(number(lookup, "DB_ACQUIRE_TIMEOUT_MS", 5_000)?),
            lock_timeout: Duration::from_millis(number(lookup, "DB_LOCK_TIMEOUT_MS", 10_000)?),
        })
    }

    /// Connection settings: the URL plus a `lock_timeout`, so a request never waits forever
    /// on a row lock.
    ///
    /// # Errors
    /// An unparsable `DATABASE_URL`.
    pub fn connect_options(&self) -> Result<PgConnectOptions, ConfigError> {
        let lock_timeout = format!("{}ms", self.lock_timeout.as_millis());
        Ok(PgConnectOptions::from_str(self.url.expose_secret())
            .map_err(|e| ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: e.to_string(),
            })?
            .application_name("keystone")
            .options([("lock_timeout", lock_timeout.as_str())]))
    }

    /// Pool sizing.
    pub fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
    }

    /// A pool that connects on first use, so a cold start does not wait for the database and
    /// a database blip does not kill the container.
    ///
    /// # Errors
    /// An unparsable `DATABASE_URL`.
    pub fn lazy_pool(&self) -> Result<PgPool, ConfigError> {
        Ok(self
            .pool_options()
            .connect_lazy_with(self.connect_options()?))
    }
}
