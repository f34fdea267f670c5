//! Database settings from the environment, shared by every function (HTTP or not).

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

use crate::{Database, TransactionLimits};

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

/// The CAs a `verify-ca`/`verify-full` connection trusts unless the URL names its own
/// `sslrootcert`: Amazon RDS's (Aurora endpoints) and the Amazon roots of RDS Proxy's ACM
/// certificates, shipped inside every function (regenerate with `infra/rds-ca-bundle.sh`).
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("../certs/rds-ca-bundle.pem");

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: SecretString,
    /// Connections per container. Lambda runs one request at a time per container, so a
    /// couple suffice; RDS Proxy multiplexes them.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// The lock, statement and idle-in-transaction limits (SPEC §6) that `db-migrate` and the
    /// local stack make the application role's defaults; the functions never send them.
    pub limits: TransactionLimits,
}

impl DbConfig {
    /// Reads `DATABASE_URL`, `DB_MAX_CONNECTIONS`, `DB_ACQUIRE_TIMEOUT_MS`,
    /// `DB_LOCK_TIMEOUT_MS`, `DB_STATEMENT_TIMEOUT_MS` and `DB_IDLE_IN_TRANSACTION_TIMEOUT_MS`.
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
        let defaults = TransactionLimits::default();
        let limit = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            let ms = number(
                lookup,
                name,
                u64::try_from(default.as_millis()).unwrap_or(u64::MAX),
            )?;
            // PostgreSQL keeps these limits as 32-bit milliseconds.
            if ms > i32::MAX as u64 {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("at most {} milliseconds", i32::MAX),
                });
            }
            Ok(Duration::from_millis(ms))
        };
        Ok(Self {
            url: SecretString::from(required(lookup, "DATABASE_URL")?),
            max_connections: max_connections.max(1),
            acquire_timeout: Duration::from_millis(number(lookup, "DB_ACQUIRE_TIMEOUT_MS", 5_000)?),
            limits: TransactionLimits {
                lock_timeout: limit("DB_LOCK_TIMEOUT_MS", defaults.lock_timeout)?,
                statement_timeout: limit("DB_STATEMENT_TIMEOUT_MS", defaults.statement_timeout)?,
                idle_in_transaction_timeout: limit(
                    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                    defaults.idle_in_transaction_timeout,
                )?,
            },
        })
    }

    /// Connection settings from the URL, and nothing a pooling proxy would refuse or lose: no
    /// startup `options`, no session settings (the limits are the role's defaults).
    ///
    /// # Errors
    /// An unparsable `DATABASE_URL`.
    pub fn connect_options(&self) -> Result<PgConnectOptions, ConfigError> {
        let options = PgConnectOptions::from_str(self.url.expose_secret())
            .map_err(|e| ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: e.to_string(),
            })?
            .application_name(crate::APPLICATION_NAME);
        let verifies = matches!(
            options.get_ssl_mode(),
            PgSslMode::VerifyCa | PgSslMode::VerifyFull
        );
        Ok(if verifies && self.url_parameter("sslrootcert").is_none() {
            options.ssl_root_cert_from_pem(RDS_CA_BUNDLE.to_vec())
        } else {
            options
        })
    }

    /// The value of `parameter` in the URL's query, if it names it.
    fn url_parameter(&self, parameter: &str) -> Option<&str> {
        let (_, query) = self.url.expose_secret().split_once('?')?;
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == parameter).then_some(value)
        })
    }

    /// True when the URL turns sqlx's statement cache off (`statement-cache-capacity=0`), the
    /// setting for a pooler that does not keep named statements (PgBouncer before 1.21).
    pub fn statement_cache_disabled(&self) -> bool {
        self.url_parameter("statement-cache-capacity") == Some("0")
    }

    /// Pool sizing, and no ping before handing out an idle connection: a ping is a round
    /// trip through the proxy on every request, and [`Database::begin`] tries the next
    /// connection when one turns out dead.
    pub fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(false)
    }

    /// Wraps a pool built from this configuration in the handle the store takes.
    pub fn database(&self, pool: PgPool) -> Database {
        let db = Database::new(pool);
        if self.statement_cache_disabled() {
            db.with_unnamed_statements()
        } else {
            db
        }
    }

    /// A handle whose pool connects on first use, so a cold start does not wait for the
    /// database and a database blip does not kill the container.
    ///
    /// # Errors
    /// An unparsable `DATABASE_URL`.
    pub fn lazy_database(&self) -> Result<Database, ConfigError> {
        Ok(self.database(
            self.pool_options()
                .connect_lazy_with(self.connect_options()?),
        ))
    }

    /// A handle whose pool has connected once, for the local stack and tools that should fail
    /// at start when the database is unreachable.
    ///
    /// # Errors
    /// An unparsable `DATABASE_URL`, or no connection.
    pub async fn connect(&self) -> Result<Database, ConnectError> {
        let pool = self
            .pool_options()
            .connect_with(self.connect_options()?)
            .await?;
        Ok(self.database(pool))
    }
}

/// Why [`DbConfig::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot connect to the database")]
    Database(#[from] sqlx::Error),
}
