//! The JWT keys a container verifies and signs with, re-read from their secret while the
//! container lives so a key rotation needs no redeploy (SPEC §9 "Production path").

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use keystone_auth::{AuthError, JwtKeys, Principal};
use keystone_secrets::SecretSource;

/// How often the key set is re-read from its secret.
pub const JWT_KEYS_REFRESH: Duration = Duration::from_secs(300);

/// The least time between two re-reads forced by tokens naming an unknown `kid`, so forged
/// `kid`s cost at most one secret read per container per interval.
pub const JWT_KEYS_UNKNOWN_KID_REFRESH: Duration = Duration::from_secs(10);

struct Rotation {
    source: Arc<dyn SecretSource>,
    issuer: Option<String>,
    every: Duration,
    checked_at: Mutex<Instant>,
    /// When an unknown `kid` last made this container re-read the secret.
    forced_at: Mutex<Option<Instant>>,
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
                forced_at: Mutex::new(None),
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
        self.reload(rotation).await;
        self.current()
    }

    /// Verifies an `Authorization` header. A token that names a `kid` these keys do not know
    /// was signed by a container that has already seen a rotation: the secret is re-read once
    /// (at most every [`JWT_KEYS_UNKNOWN_KID_REFRESH`]) and the token checked again, so a
    /// rotation never answers 401 to a valid token (SPEC §9).
    ///
    /// # Errors
    /// The SPEC §4 failure that applies.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Principal, AuthError> {
        let keys = self.keys().await;
        match keys.authenticate(authorization) {
            Err(AuthError::InvalidToken) if keys.names_unknown_key(authorization) => {
                let Some(rotation) = &self.rotation else {
                    return Err(AuthError::InvalidToken);
                };
                {
                    let mut forced_at = rotation
                        .forced_at
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if forced_at.is_some_and(|at| at.elapsed() < JWT_KEYS_UNKNOWN_KID_REFRESH) {
                        return Err(AuthError::InvalidToken);
                    }
                    *forced_at = Some(Instant::now());
                }
                tracing::info!("a token names an unknown key id; re-reading the JWT keys");
                self.reload(rotation).await;
                self.current().authenticate(authorization)
            }
            other => other,
        }
    }

    /// Reads the secret again and swaps the keys in; an unreadable or unusable secret keeps
    /// the keys in use (and is logged).
    async fn reload(&self, rotation: &Rotation) {
        match rotation.source.fetch().await {
            Ok(secret) => match JwtKeys::parse(&secret, rotation.issuer.clone())
                .map(|keys| keys.with_token_lifetime(self.current().token_lifetime()))
            {
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
    }
}
