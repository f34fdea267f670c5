//! Secrets at cold start. In AWS, functions get `DB_SECRET_ARN` (the database's
//! Secrets-Manager-managed credentials), `JWT_SECRET_ARN` and `ADMIN_PASSWORD_SECRET_ARN`
//! instead of `DATABASE_URL`, `JWT_SECRET` and `ADMIN_PASSWORD`; this crate reads them once per container and presents the result as
//! ordinary configuration, so the rest of the code (and local runs, which set the plain
//! variables) never knows the difference.

use std::collections::HashMap;

use aws_config::BehaviorVersion;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read secret {arn}: {reason}")]
    Fetch { arn: String, reason: String },
    #[error("secret {arn} is not the expected JSON: {reason}")]
    Shape { arn: String, reason: String },
}

/// The process environment, plus values resolved from Secrets Manager.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    resolved: HashMap<&'static str, String>,
}

impl Environment {
    /// A variable: resolved secrets first, then the process environment.
    pub fn get(&self, name: &str) -> Option<String> {
        self.resolved
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
}

/// The credentials secret RDS manages: `{"username", "password", "host", "port", "dbname"}`.
#[derive(Deserialize)]
struct DatabaseSecret {
    username: String,
    password: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    dbname: Option<String>,
}

/// Variables whose value may come from a plain-text secret named by `{VARIABLE}_ARN`-style
/// companions.
const PLAIN_SECRETS: [(&str, &str); 2] = [
    ("JWT_SECRET", "JWT_SECRET_ARN"),
    ("ADMIN_PASSWORD", "ADMIN_PASSWORD_SECRET_ARN"),
];

fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty())
}

/// Resolves `DATABASE_URL` from `DB_SECRET_ARN` (host from `DB_HOST`, the RDS Proxy endpoint,
/// when set; database from `DB_NAME`), `JWT_SECRET` from `JWT_SECRET_ARN` and `ADMIN_PASSWORD`
/// from `ADMIN_PASSWORD_SECRET_ARN`, each only when the plain variable is unset. Makes no AWS call when nothing needs resolving.
///
/// # Errors
/// A secret that cannot be read or parsed.
pub async fn resolve() -> Result<Environment, SecretsError> {
    let want_db = !set("DATABASE_URL") && set("DB_SECRET_ARN");
    let plain: Vec<(&'static str, &'static str)> = PLAIN_SECRETS
        .iter()
        .copied()
        .filter(|(name, arn)| !set(name) && set(arn))
        .collect();
    let mut environment = Environment::default();
    if !want_db && plain.is_empty() {
        return Ok(environment);
    }
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    if want_db {
        let arn = std::env::var("DB_SECRET_ARN").unwrap_or_default();
        let raw = fetch(&client, &arn).await?;
        let secret: DatabaseSecret =
            serde_json::from_str(&raw).map_err(|e| SecretsError::Shape {
                arn: arn.clone(),
                reason: e.to_string(),
            })?;
        let host = std::env::var("DB_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .or(secret.host);
        let host = host.ok_or_else(|| SecretsError::Shape {
            arn: arn.clone(),
            reason: "no host, and DB_HOST is unset".to_owned(),
        })?;
        let dbname = std::env::var("DB_NAME")
            .ok()
            .filter(|d| !d.is_empty())
            .or(secret.dbname);
        let url = format!(
            "postgres://{}:{}@{}:{}/{}?sslmode=require",
            utf8_percent_encode(&secret.username, NON_ALPHANUMERIC),
            utf8_percent_encode(&secret.password, NON_ALPHANUMERIC),
            host,
            secret.port.unwrap_or(5432),
            dbname.as_deref().unwrap_or("keystone"),
        );
        environment.resolved.insert("DATABASE_URL", url);
    }
    for (name, arn_variable) in &plain {
        let arn = std::env::var(arn_variable).unwrap_or_default();
        environment
            .resolved
            .insert(name, fetch(&client, &arn).await?);
    }
    tracing::info!(database = want_db, others = plain.len(), "secrets resolved");
    Ok(environment)
}

async fn fetch(client: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<String, SecretsError> {
    client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| SecretsError::Fetch {
            arn: arn.to_owned(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?
        .secret_string
        .ok_or_else(|| SecretsError::Shape {
            arn: arn.to_owned(),
            reason: "no SecretString".to_owned(),
        })
}
