//! Secrets and database credentials from AWS, at cold start and as they rotate.
//!
//! In AWS, functions get `JWT_SECRET_ARN` and `ADMIN_PASSWORD_SECRET_ARN` instead of
//! `JWT_SECRET` and `ADMIN_PASSWORD`, and reach the database either through RDS Proxy with IAM
//! authentication (`DB_IAM_AUTH=true`, `DB_HOST`, `DB_USER`, …: the HTTP functions, the relay
//! and the consumer) or with the RDS-managed master secret (`DB_SECRET_ARN`: db-migrate only).
//! This crate reads what cold start needs and presents it as ordinary configuration, and hands
//! out the sources that rotate (the JWT key set, the database password or IAM token) so they
//! are re-read while the container lives. Local runs set the plain variables and make no AWS
//! call.

mod rds_iam;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use keystone_store::PasswordSource;
use keystone_store::config::{ConfigError, DbConfig};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use rds_iam::RdsIamAuthToken;

/// How often a rotating database password is asked for again. An IAM token lives 15 minutes;
/// a managed password is also re-read at once after a refused login.
pub const DATABASE_PASSWORD_REFRESH: Duration = Duration::from_secs(300);

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read secret {arn}: {reason}")]
    Fetch { arn: String, reason: String },
    #[error("secret {arn} is not the expected JSON: {reason}")]
    Shape { arn: String, reason: String },
    #[error("environment variable {0} is required with DB_IAM_AUTH")]
    Missing(&'static str),
    #[error("cannot sign an RDS IAM token: {0}")]
    IamToken(String),
}

/// A secret value that may change while the container lives, read again on demand.
pub trait SecretSource: Send + Sync + fmt::Debug {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<SecretString, SecretsError>> + Send + '_>>;
}

/// A Secrets Manager secret's current `SecretString`.
#[derive(Debug, Clone)]
pub struct SecretsManagerValue {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl SecretsManagerValue {
    async fn read(&self) -> Result<SecretString, SecretsError> {
        self.client
            .get_secret_value()
            .secret_id(&self.arn)
            .send()
            .await
            .map_err(|e| SecretsError::Fetch {
                arn: self.arn.clone(),
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            })?
            .secret_string
            .map(SecretString::from)
            .ok_or_else(|| SecretsError::Shape {
                arn: self.arn.clone(),
                reason: "no SecretString".to_owned(),
            })
    }

    async fn database_secret(&self) -> Result<DatabaseSecret, SecretsError> {
        let raw = self.read().await?;
        parse_database_secret(&raw, &self.arn)
    }
}

impl SecretSource for SecretsManagerValue {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<SecretString, SecretsError>> + Send + '_>> {
        Box::pin(self.read())
    }
}

/// Parses the RDS-managed secret; an error names the secret and the position, never a value.
fn parse_database_secret(raw: &SecretString, arn: &str) -> Result<DatabaseSecret, SecretsError> {
    serde_json::from_str(raw.expose_secret()).map_err(|e| SecretsError::Shape {
        arn: arn.to_owned(),
        reason: keystone_domain::redacted_json_error(&e),
    })
}

/// The credentials secret RDS manages: `{"username", "password", "host", "port", "dbname"}`.
#[derive(Deserialize)]
struct DatabaseSecret {
    username: String,
    password: SecretString,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    dbname: Option<String>,
}

/// The password of the RDS-managed master secret, re-read as RDS rotates it (every 7 days).
#[derive(Debug)]
struct ManagedDatabasePassword(SecretsManagerValue);

impl PasswordSource for ManagedDatabasePassword {
    fn password(&self) -> Pin<Box<dyn Future<Output = Result<SecretString, String>> + Send + '_>> {
        Box::pin(async move {
            self.0
                .database_secret()
                .await
                .map(|secret| secret.password)
                .map_err(|e| e.to_string())
        })
    }
}

/// The process environment, plus what was resolved from AWS.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    resolved: HashMap<&'static str, String>,
    jwt_secret: Option<Arc<dyn SecretSource>>,
    database_password: Option<Arc<dyn PasswordSource>>,
}

impl Environment {
    /// A variable: resolved values first, then the process environment.
    pub fn get(&self, name: &str) -> Option<String> {
        self.resolved
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }

    /// Where to re-read `JWT_SECRET` from when it rotates, when it came from Secrets Manager.
    pub fn jwt_secret_source(&self) -> Option<Arc<dyn SecretSource>> {
        self.jwt_secret.clone()
    }

    /// The database handle for `config`, its pool connecting lazily, with the rotating
    /// password (IAM token or managed secret) when the database is reached that way.
    ///
    /// # Errors
    /// An unparsable `DATABASE_URL`.
    pub fn database(&self, config: &DbConfig) -> Result<keystone_store::Database, ConfigError> {
        let db = config.lazy_database()?;
        Ok(match &self.database_password {
            Some(source) => db.with_rotating_password(source.clone(), DATABASE_PASSWORD_REFRESH),
            None => db,
        })
    }
}

/// Variables whose value may come from a plain-text secret named by a companion variable.
const PLAIN_SECRETS: [(&str, &str); 2] = [
    ("JWT_SECRET", "JWT_SECRET_ARN"),
    ("ADMIN_PASSWORD", "ADMIN_PASSWORD_SECRET_ARN"),
];

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The URL of a database reached over verified TLS, without a password (it rotates, and comes
/// from the pool's connect options).
fn database_url(user: &str, host: &str, port: u16, dbname: &str) -> String {
    format!(
        "postgres://{}@{host}:{port}/{}?sslmode=verify-full",
        utf8_percent_encode(user, NON_ALPHANUMERIC),
        utf8_percent_encode(dbname, NON_ALPHANUMERIC),
    )
}

/// Resolves what cold start needs, each only when its plain variable is unset:
/// - with `DB_IAM_AUTH=true`: `DATABASE_URL` for `DB_USER` (default `keystone_app`) at
///   `DB_HOST`:`DB_PORT`/`DB_NAME` over verified TLS, and an RDS IAM token source for its
///   password;
/// - else with `DB_SECRET_ARN`: `DATABASE_URL` from the managed secret (host from `DB_HOST`
///   when set), and the secret as the source of its password;
/// - `JWT_SECRET` from `JWT_SECRET_ARN` (and the secret as its source when it rotates), and
///   `ADMIN_PASSWORD` from `ADMIN_PASSWORD_SECRET_ARN`.
///
/// Makes no AWS call when nothing needs resolving.
///
/// # Errors
/// A secret that cannot be read or parsed, or a missing `DB_HOST` for IAM authentication.
pub async fn resolve() -> Result<Environment, SecretsError> {
    let want_db = var("DATABASE_URL").is_none();
    let iam = want_db && var("DB_IAM_AUTH").is_some_and(|v| v == "true" || v == "1");
    let db_secret = want_db && !iam && var("DB_SECRET_ARN").is_some();
    let plain: Vec<(&'static str, &'static str)> = PLAIN_SECRETS
        .iter()
        .copied()
        .filter(|(name, arn)| var(name).is_none() && var(arn).is_some())
        .collect();
    let mut environment = Environment::default();
    if !iam && !db_secret && plain.is_empty() {
        return Ok(environment);
    }
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let port = var("DB_PORT").and_then(|p| p.parse().ok()).unwrap_or(5432);
    let dbname = var("DB_NAME").unwrap_or_else(|| "keystone".to_owned());
    if iam {
        let host = var("DB_HOST").ok_or(SecretsError::Missing("DB_HOST"))?;
        let user = var("DB_USER").unwrap_or_else(|| "keystone_app".to_owned());
        environment
            .resolved
            .insert("DATABASE_URL", database_url(&user, &host, port, &dbname));
        environment.database_password =
            Some(Arc::new(RdsIamAuthToken::new(&config, &host, port, &user)?));
    } else if db_secret {
        let source = SecretsManagerValue {
            client: client.clone(),
            arn: var("DB_SECRET_ARN").unwrap_or_default(),
        };
        let secret = source.database_secret().await?;
        let host = var("DB_HOST")
            .or(secret.host)
            .ok_or_else(|| SecretsError::Shape {
                arn: source.arn.clone(),
                reason: "no host, and DB_HOST is unset".to_owned(),
            })?;
        let dbname = var("DB_NAME").or(secret.dbname).unwrap_or(dbname);
        let port = var("DB_PORT").map_or(secret.port.unwrap_or(5432), |_| port);
        environment.resolved.insert(
            "DATABASE_URL",
            database_url(&secret.username, &host, port, &dbname),
        );
        environment.database_password = Some(Arc::new(ManagedDatabasePassword(source)));
    }
    for (name, arn_variable) in &plain {
        let source = SecretsManagerValue {
            client: client.clone(),
            arn: var(arn_variable).unwrap_or_default(),
        };
        let value = source.read().await?;
        environment
            .resolved
            .insert(name, value.expose_secret().to_owned());
        if *name == "JWT_SECRET" {
            environment.jwt_secret = Some(Arc::new(source));
        }
    }
    tracing::info!(
        iam,
        db_secret,
        others = plain.len(),
        "configuration resolved"
    );
    Ok(environment)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret of the wrong shape is reported by position, never by quoting it.
    #[test]
    fn a_malformed_database_secret_is_not_quoted() {
        const LEAK: &str = "hunter2-database-password";
        for raw in [
            format!(r#"{{"username": "u", "password": 12, "port": "{LEAK}"}}"#),
            format!(r#"{{"username": "{LEAK}"#),
            format!(r#"["{LEAK}"]"#),
        ] {
            let error = parse_database_secret(&SecretString::from(raw.clone()), "arn:secret")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                error.contains("arn:secret") && !error.contains(LEAK),
                "{raw}: {error}"
            );
        }
    }
}
