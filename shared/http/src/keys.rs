//! The JWT keys a container verifies and signs with, re-read from their secret while the
//! container lives so a key rotation needs no redeploy (SPEC §9 "Production path").

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use keystone_auth::JwtKeys;
use keystone_secrets::SecretSource;

/// How often the key set is re-read from its secret.
pub const JWT_KEYS_REFRESH: Duration = Duration::from_secs(300);

struct Rotation {
    source: Arc<dyn SecretSource>,
    issuer: Option<String>,
    every: Duration,
    checked_at: Mutex<Instant>,
}

/// The current [`JwtKeys`], swapped when the secret they come from changes.
pub struct JwtKeyRing {
    keys: RwLock<Arc<JwtKeys>>,
    rotation: Option<Rotation>,
}

impl std::fmt::Debug for JwtKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeyRing")
            .field("keys", &self.current())
            .field("rotating", &self.rotation.is_some())
            .finish()
    }
}

impl From<JwtKeys> for JwtKeyRing {
    /// Keys that never change (local runs, tests, a plain `JWT_SECRET`).
    fn from(keys: JwtKeys) -> Self {
        Self {
            keys: RwLock::new(Arc::new(keys)),
            rotation: None,
        }
    }
}

impl JwtKeyRing {
    /// Keys re-read from `source` every `every`, parsed with `issuer` as at cold start.
    pub fn rotating(
        keys: JwtKeys,
        source: Arc<dyn SecretSource>,
        issuer: Option<String>,
        every: Duration,
    ) -> Self {
        Self {
            keys: RwLock::new(Arc::new(keys)),
            rotation: Some(Rotation {
                source,
                issuer,
                every,
                checked_at: Mutex::new(Instant::now()),
            }),
        }
    }

    fn current(&self) -> Arc<JwtKeys> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys to use now, re-read first when the last read is older than the refresh
    /// interval. A secret that cannot be read or parsed keeps the keys in use (and is logged):
    /// requests never fail for a refresh.
    pub async fn keys(&self) -> Arc<JwtKeys> {
        let Some(rotation) = &self.rotation else {
            return self.current();
        };
        {
            // One request per interval re-reads; the others go on with the current keys.
            let mut checked_at = rotation
                .checked_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if checked_at.elapsed() < rotation.every {
                return self.current();
            }
            *checked_at = Instant::now();
        }
        match rotation.source.fetch().await {
            Ok(secret) => match JwtKeys::parse(&secret, rotation.issuer.clone()) {
                Ok(keys) => {
                    tracing::debug!(kid = keys.current_kid(), "JWT keys re-read");
                    *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                }
                Err(e) => {
                    tracing::error!(error = %e, "the rotated JWT secret is unusable; keeping the keys in use")
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read the JWT secret; keeping the keys in use")
            }
        }
        self.current()
    }
}
