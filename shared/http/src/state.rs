//! The state every handler receives, built once per container.

use std::sync::Arc;
use std::time::Duration;

use keystone_store::login_throttle::ThrottlePolicy;

use crate::keys::JwtKeyRing;
use keystone_store::Database;
use keystone_store::notifications::DeadLetterRedrive;
use keystone_store::outbox::OutboxPublisher;

use crate::config::{AdminCredentials, Config, ConfigError};

/// Shared, cheaply cloned handler state.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Database,
    pub jwt: Arc<JwtKeyRing>,
    pub login: Arc<LoginSettings>,
    pub outbox: Option<Arc<dyn OutboxPublisher>>,
    /// Moves dead letters back to the queue (the redrive function and the local stack).
    pub redrive: Option<Arc<dyn DeadLetterRedrive>>,
    /// The most a request spends publishing after its commit.
    pub publish_deadline: Duration,
}

/// What the login function needs beyond the keys.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    pub admin: Option<AdminCredentials>,
    pub token_ttl: Duration,
    pub throttle: ThrottlePolicy,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            admin: None,
            token_ttl: Duration::from_secs(86_400),
            throttle: ThrottlePolicy::default(),
        }
    }
}

impl AppState {
    pub fn new(db: impl Into<Database>, jwt: impl Into<JwtKeyRing>) -> Self {
        Self {
            db: db.into(),
            jwt: Arc::new(jwt.into()),
            login: Arc::new(LoginSettings::default()),
            outbox: None,
            redrive: None,
            publish_deadline: crate::config::DEFAULT_PUBLISH_DEADLINE,
        }
    }

    /// Bounds the publishing after commit (see [`AppState::publish_committed`]).
    #[must_use]
    pub fn with_publish_deadline(mut self, deadline: Duration) -> Self {
        self.publish_deadline = deadline;
        self
    }

    #[must_use]
    pub fn with_login(mut self, login: LoginSettings) -> Self {
        self.login = Arc::new(login);
        self
    }

    /// Publishes outbox rows right after the requests that wrote them commit.
    #[must_use]
    pub fn with_outbox(mut self, publisher: Arc<dyn OutboxPublisher>) -> Self {
        self.outbox = Some(publisher);
        self
    }

    /// Lets the redrive endpoint move dead letters back to the queue.
    #[must_use]
    pub fn with_redrive(mut self, redrive: Arc<dyn DeadLetterRedrive>) -> Self {
        self.redrive = Some(redrive);
        self
    }

    /// Sends rows this request committed, if a publisher is configured, for at most the
    /// publish deadline. Never fails the request and never holds its answer longer: whatever
    /// is not sent by then (a slow or unreachable SQS), the relay sends on its next run. A
    /// batch cut off after SQS took it is sent again by the relay, which FIFO deduplication
    /// and the consumer's delivery records absorb.
    pub async fn publish_committed(&self, outbox_ids: &[i64]) {
        if let (Some(publisher), false) = (&self.outbox, outbox_ids.is_empty()) {
            let publishing = publisher.publish_committed(outbox_ids);
            if tokio::time::timeout(self.publish_deadline, publishing)
                .await
                .is_err()
            {
                tracing::warn!(
                    rows = outbox_ids.len(),
                    deadline_ms =
                        u64::try_from(self.publish_deadline.as_millis()).unwrap_or(u64::MAX),
                    "publishing after commit ran out of time; the relay will send"
                );
            }
        }
    }

    /// Builds the database handle and keys from configuration. The pool connects lazily.
    ///
    /// # Errors
    /// An unparsable `DATABASE_URL`.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self::from_config_with(config, config.db.lazy_database()?))
    }

    /// Re-reads the JWT keys from `source` while the container lives.
    #[must_use]
    pub fn with_rotating_jwt_keys(
        mut self,
        config: &Config,
        source: Arc<dyn keystone_secrets::SecretSource>,
    ) -> Self {
        self.jwt = Arc::new(JwtKeyRing::rotating(
            config.jwt_keys.clone(),
            source,
            config.jwt_issuer.clone(),
            crate::keys::JWT_KEYS_REFRESH,
        ));
        self
    }

    /// Builds the keys from configuration around a database handle built elsewhere.
    pub fn from_config_with(config: &Config, db: Database) -> Self {
        Self::new(db, config.jwt_keys.clone())
            .with_login(LoginSettings {
                admin: config.admin.clone(),
                token_ttl: config.token_ttl,
                throttle: config.login_throttle,
            })
            .with_publish_deadline(config.publish_deadline)
    }
}
