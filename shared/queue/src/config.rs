//! Queue and consumer settings from the environment, and the SQS client.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::config::{Credentials, Region};
use keystone_store::config::{ConfigError, number, required};

/// Where notifications go.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// `KEYSTONE_QUEUE_URL`: the FIFO queue.
    pub queue_url: String,
    /// `AWS_ENDPOINT_URL_SQS`: a local SQS server instead of AWS.
    pub endpoint_url: Option<String>,
    /// `OUTBOX_PARK_AFTER`: refusals by SQS after which an outbox row is parked (default 10).
    pub park_after: i32,
    /// `NOTIFICATION_RETENTION_DAYS`: how long delivered recorder commands and their delivery
    /// records are kept (default 30, 1–3650); the relay removes older ones.
    pub retention: Duration,
}

impl QueueConfig {
    /// # Errors
    /// A missing `KEYSTONE_QUEUE_URL`.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let park_after = number(
            lookup,
            "OUTBOX_PARK_AFTER",
            crate::publisher::DEFAULT_PARK_AFTER.unsigned_abs().into(),
        )?;
        let park_after =
            i32::try_from(park_after)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(ConfigError::Invalid {
                    name: "OUTBOX_PARK_AFTER",
                    reason: "must be between 1 and 2147483647".to_owned(),
                })?;
        let retention_days = number(
            lookup,
            "NOTIFICATION_RETENTION_DAYS",
            crate::relay::DEFAULT_RETENTION_DAYS,
        )?;
        if !(1..=3650).contains(&retention_days) {
            return Err(ConfigError::Invalid {
                name: "NOTIFICATION_RETENTION_DAYS",
                reason: "must be between 1 and 3650".to_owned(),
            });
        }
        Ok(Self {
            queue_url: required(lookup, "KEYSTONE_QUEUE_URL")?,
            endpoint_url: lookup("AWS_ENDPOINT_URL_SQS").filter(|v| !v.is_empty()),
            park_after,
            retention: Duration::from_secs(retention_days * 86_400),
        })
    }

    /// Reads the process environment.
    ///
    /// # Errors
    /// A missing `KEYSTONE_QUEUE_URL`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }
}

/// How the consumer reaches devices.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// `RECORDER_RPC_URL_TEMPLATE`, e.g. `http://{device_id}.fleet.internal:8080`.
    pub rpc_url_template: String,
    /// `RECORDER_RPC_TIMEOUT_MS`: whole-call timeout of one RPC.
    pub rpc_timeout: Duration,
    /// How long a claimed delivery is reserved for this consumer (at least the RPC timeout).
    pub lease: Duration,
}

impl NotifierConfig {
    /// # Errors
    /// A missing template, one without `{device_id}`, or an invalid timeout.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let rpc_url_template = required(lookup, "RECORDER_RPC_URL_TEMPLATE")?;
        if !rpc_url_template.contains("{device_id}") {
            return Err(ConfigError::Invalid {
                name: "RECORDER_RPC_URL_TEMPLATE",
                reason: "must contain {device_id}".to_owned(),
            });
        }
        let rpc_timeout = Duration::from_millis(number(lookup, "RECORDER_RPC_TIMEOUT_MS", 5_000)?);
        Ok(Self {
            rpc_url_template,
            rpc_timeout,
            lease: rpc_timeout * 3,
        })
    }

    /// Reads the process environment.
    ///
    /// # Errors
    /// See [`NotifierConfig::from_lookup`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }
}

/// An SQS client with short timeouts and few retries: the inline publish runs inside a
/// request, and whatever it cannot send the relay sends later.
///
/// With an explicit `endpoint_url` (a local SQS server) and no AWS credentials in the
/// environment, static dummy credentials and `us-east-1` are used.
pub async fn sqs_client(endpoint_url: Option<&str>) -> aws_sdk_sqs::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(10))
                .build(),
        );
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(Credentials::new(
                "keystone-local",
                "keystone-local",
                None,
                None,
                "keystone-local",
            ));
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(Region::new("us-east-1"));
        }
    }
    aws_sdk_sqs::Client::new(&loader.load().await)
}
