//! Configuration of the HTTP functions, parsed once per container (SPEC §9).

use std::time::Duration;

use keystone_auth::JwtKeys;
pub use keystone_store::config::ConfigError;
use keystone_store::config::{DbConfig, number, required};
use keystone_store::login_throttle::ThrottlePolicy;
use secrecy::SecretString;

/// The administrator account, configured rather than stored (SPEC §5.6).
#[derive(Debug, Clone)]
pub struct AdminCredentials {
    pub username: String,
    pub password: SecretString,
}

/// Settings every HTTP function needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: DbConfig,
    /// The key set from `JWT_SECRET`: one plain secret, or `{"current", "previous"}` keys.
    pub jwt_keys: JwtKeys,
    /// Checked against the `iss` claim when set.
    pub jwt_issuer: Option<String>,
    /// `ADMIN_USERNAME` / `ADMIN_PASSWORD`; without them nobody can log in as admin.
    pub admin: Option<AdminCredentials>,
    /// Lifetime of issued tokens (`JWT_TTL_SECONDS`).
    pub token_ttl: Duration,
    /// How long a request may spend publishing its committed notifications before it answers
    /// (`PUBLISH_DEADLINE_MS`); the relay sends whatever is left.
    pub publish_deadline: Duration,
    /// Login throttling (`LOGIN_ACCOUNT_THRESHOLD` 10–20, `LOGIN_SOURCE_THRESHOLD` ≥ 100).
    pub login_throttle: ThrottlePolicy,
}

/// [`Config::publish_deadline`] unless configured: short enough that publishing never pushes
/// a committed request past the Lambda timeout (docs/deploy.md, time budgets).
pub const DEFAULT_PUBLISH_DEADLINE: Duration = Duration::from_secs(2);

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    /// The first missing or invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests and the local stack can supply them.
    ///
    /// # Errors
    /// The first missing or invalid variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let jwt_issuer = lookup("JWT_ISSUER").filter(|v| !v.is_empty());
        let jwt_keys = JwtKeys::parse(
            &SecretString::from(required(&lookup, "JWT_SECRET")?),
            jwt_issuer.clone(),
        )
        .map_err(|e| ConfigError::Invalid {
            name: "JWT_SECRET",
            reason: e.to_string(),
        })?;
        let admin = match (lookup("ADMIN_USERNAME"), lookup("ADMIN_PASSWORD")) {
            (Some(username), Some(password)) if !username.is_empty() && !password.is_empty() => {
                Some(AdminCredentials {
                    username,
                    password: SecretString::from(password),
                })
            }
            (None, None) => None,
            _ => {
                return Err(ConfigError::Missing(
                    "ADMIN_USERNAME and ADMIN_PASSWORD (both or neither)",
                ));
            }
        };
        let token_ttl = Duration::from_secs(number(&lookup, "JWT_TTL_SECONDS", 86_400)?);
        if token_ttl.is_zero() {
            return Err(ConfigError::Invalid {
                name: "JWT_TTL_SECONDS",
                reason: "must be positive".to_owned(),
            });
        }
        let publish_deadline = Duration::from_millis(number(
            &lookup,
            "PUBLISH_DEADLINE_MS",
            u64::try_from(DEFAULT_PUBLISH_DEADLINE.as_millis()).unwrap_or(u64::MAX),
        )?);
        let defaults = ThrottlePolicy::default();
        let account_threshold = number_within(
            &lookup,
            "LOGIN_ACCOUNT_THRESHOLD",
            defaults.account_threshold,
            10..=20,
        )?;
        let source_threshold = number_within(
            &lookup,
            "LOGIN_SOURCE_THRESHOLD",
            defaults.source_threshold,
            100..=1_000_000,
        )?;
        let login_throttle = ThrottlePolicy {
            account_threshold,
            source_threshold,
            ..defaults
        };
        Ok(Self {
            login_throttle,
            db: DbConfig::from_lookup(&lookup)?,
            jwt_keys: jwt_keys.with_token_lifetime(token_ttl),
            jwt_issuer,
            admin,
            token_ttl,
            publish_deadline,
        })
    }
}

/// A whole number from `lookup`, `default` when unset, refused outside `range`.
fn number_within(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ConfigError> {
    let value = number(lookup, name, default.into())?;
    u32::try_from(value)
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| ConfigError::Invalid {
            name,
            reason: format!("must be between {} and {}", range.start(), range.end()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn missing_variables_are_named() {
        let err = Config::from_lookup(lookup(&[("JWT_SECRET", "0123456789abcdef")]));
        assert!(matches!(err, Err(ConfigError::Missing("DATABASE_URL"))));
        let err = Config::from_lookup(lookup(&[("DATABASE_URL", "postgres://x")]));
        assert!(matches!(err, Err(ConfigError::Missing("JWT_SECRET"))));
    }

    #[test]
    fn login_thresholds_stay_within_the_spec_range() {
        let with = |name: &'static str, value: &'static str| {
            Config::from_lookup(move |n| match n {
                "DATABASE_URL" => Some("postgres://x".to_owned()),
                "JWT_SECRET" => Some("0123456789abcdef".to_owned()),
                n if n == name => Some(value.to_owned()),
                _ => None,
            })
        };
        for (name, value) in [
            ("LOGIN_ACCOUNT_THRESHOLD", "9"),
            ("LOGIN_ACCOUNT_THRESHOLD", "21"),
            ("LOGIN_SOURCE_THRESHOLD", "99"),
            ("LOGIN_SOURCE_THRESHOLD", "-1"),
        ] {
            assert!(
                matches!(with(name, value), Err(ConfigError::Invalid { .. })),
                "{name}={value}"
            );
        }
        let config = with("LOGIN_ACCOUNT_THRESHOLD", "20").unwrap();
        assert_eq!(config.login_throttle.account_threshold, 20);
        assert_eq!(config.login_throttle.source_threshold, 100);
    }

    #[test]
    fn admin_credentials_come_in_pairs() {
        let half = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://x"),
            ("JWT_SECRET", "0123456789abcdef"),
            ("ADMIN_USERNAME", "admin"),
        ]));
        assert!(matches!(half, Err(ConfigError::Missing(_))));
        let both = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://x"),
            ("JWT_SECRET", "0123456789abcdef"),
            ("ADMIN_USERNAME", "admin"),
            ("ADMIN_PASSWORD", "pw"),
        ]));
        assert!(matches!(both, Ok(Config { admin: Some(_), .. })));
    }

    #[test]
    fn defaults_apply_and_numbers_are_checked() {
        let ok = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://x"),
            ("JWT_SECRET", "0123456789abcdef"),
        ]));
        assert!(matches!(
            ok,
            Ok(Config {
                jwt_issuer: None,
                ..
            })
        ));
        assert!(ok.is_ok_and(|c| c.db.max_connections == 2));
        let bad = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://x"),
            ("JWT_SECRET", "0123456789abcdef"),
            ("DB_MAX_CONNECTIONS", "many"),
        ]));
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                name: "DB_MAX_CONNECTIONS",
                ..
            })
        ));
    }
}
