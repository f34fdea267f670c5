//! Bearer JWT authentication with Keystone's claims (SPEC §4).
//!
//! Tokens are HS256 only: the algorithm list is pinned, so `none`, RS256 and friends are
//! refused before the signature is even looked at. `exp` is required, `nbf` honoured, and
//! `iss` checked when an issuer is configured.

pub mod password;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// Claims as Keystone issues them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Database id of the collector; 0 or absent for the admin.
    #[serde(default)]
    pub collector_id: i64,
    #[serde(default)]
    pub operator_id: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// The roles an endpoint can require, and a caller has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    DataCollector,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::DataCollector => "data_collector",
        }
    }
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin {
        operator_id: String,
    },
    Collector {
        collector_id: i64,
        operator_id: String,
        /// The token's `iat`: a revocation after it ends the session (SPEC §4). When issuing,
        /// the earliest `iat` the new token may carry (a login just after a revocation).
        issued_at: Option<i64>,
    },
    /// Validly signed, but with a role this system does not know: it may call nothing.
    Unrecognized {
        role: String,
    },
}

impl Principal {
    /// Narrows the principal to the role an endpoint needs.
    ///
    /// # Errors
    /// [`AuthError::RoleRequired`] naming the role the endpoint needs.
    pub fn require(&self, role: Role) -> Result<&Self, AuthError> {
        match (self, role) {
            (Self::Admin { .. }, Role::Admin) | (Self::Collector { .. }, Role::DataCollector) => {
                Ok(self)
            }
            _ => Err(AuthError::RoleRequired(role)),
        }
    }
}

/// Authentication failures, each with SPEC §4's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    MissingCredentials,
    #[error("invalid authorization header format")]
    MalformedHeader,
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("{} role required", match .0 { Role::Admin => "admin", Role::DataCollector => "data collector" })]
    RoleRequired(Role),
    /// A validly signed token whose role this system does not know, on an endpoint open to
    /// every known role.
    #[error("unsupported role")]
    UnsupportedRole,
}

impl AuthError {
    /// The stable, machine-readable name of the failure (the `code` of the error body).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "authentication_required",
            Self::MalformedHeader => "invalid_authorization_header",
            Self::InvalidToken => "invalid_token",
            Self::RoleRequired(Role::Admin) => "admin_role_required",
            Self::RoleRequired(Role::DataCollector) => "collector_role_required",
            Self::UnsupportedRole => "unsupported_role",
        }
    }
}

/// Failure to sign a token; only a broken key can cause it.
#[derive(Debug, thiserror::Error)]
#[error("could not sign token")]
pub struct SigningError(#[source] jsonwebtoken::errors::Error);

/// One HS256 signing key and the id tokens name it by.
#[derive(Clone)]
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKey {
    fn new(kid: String, secret: &str) -> Self {
        Self {
            kid,
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }
}

/// Why a JWT secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the JWT key set is not valid JSON of the documented shape: {0}")]
    Shape(String),
    #[error("JWT key {kid:?} is shorter than {MIN_SECRET_BYTES} bytes")]
    TooShort { kid: String },
    #[error("the JWT key set names kid {0:?} twice")]
    DuplicateKid(String),
}

/// Shortest HS256 secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;

/// The JSON shape of a rotating key set, as stored in Secrets Manager.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySetDocument {
    current: KeyDocument,
    #[serde(default)]
    previous: Option<KeyDocument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyDocument {
    kid: String,
    secret: String,
    /// When this key stopped signing: required on `previous`, refused on `current`.
    #[serde(default)]
    retired_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// How long after its `retired_at` a previous key may still have signed: containers re-read
/// the key set every five minutes, so some sign with the old key a little after a rotation.
pub const RETIRED_KEY_SIGNING_ALLOWANCE: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The lifetime of issued tokens assumed until [`JwtKeys::with_token_lifetime`] says otherwise.
pub const DEFAULT_TOKEN_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A key that no longer signs, and when it stopped.
#[derive(Clone)]
struct RetiredKey {
    key: SigningKey,
    retired_at: i64,
}

/// Keys and validation rules, built once per container (and again when the secret rotates).
///
/// Tokens are signed with the current key and carry its `kid`; verification picks the key by
/// the token's `kid` among the current and the previous one, so tokens issued just before a
/// rotation stay valid until they expire. A token without `kid` (issued by Keystone before key
/// ids existed) is checked against the current key only; an unknown `kid` is refused.
///
/// The previous key has a life (SPEC §4): it verifies only tokens that say they were issued
/// (`iat`) before it retired (plus [`RETIRED_KEY_SIGNING_ALLOWANCE`]), and only until the
/// longest-lived of those has expired. No key verifies a token whose `iat` is in the future.
#[derive(Clone)]
pub struct JwtKeys {
    current: SigningKey,
    previous: Option<RetiredKey>,
    validation: Validation,
    issuer: Option<String>,
    token_lifetime: chrono::TimeDelta,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("current_kid", &self.current.kid)
            .field("previous_kid", &self.previous.as_ref().map(|k| &k.key.kid))
            .field(
                "previous_retired_at",
                &self.previous.as_ref().map(|k| k.retired_at),
            )
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The key id of a plain secret: derived from it, so every container agrees without
/// configuration and a new secret gets a new id.
fn derived_kid(secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("k-{hex}")
}

impl JwtKeys {
    /// Builds the keys from one plain HS256 secret (its `kid` derived from it) and the optional
    /// expected issuer.
    pub fn new(secret: &SecretString, issuer: Option<String>) -> Self {
        let secret = secret.expose_secret();
        Self::build(SigningKey::new(derived_kid(secret), secret), None, issuer)
    }

    /// Builds the keys from `JWT_SECRET` as configured: either one plain secret, or a rotating
    /// key set `{"current":{"kid","secret"},"previous":{"kid","secret"}}` (`previous`
    /// optional).
    ///
    /// # Errors
    /// A key set that is not of that shape, a secret shorter than [`MIN_SECRET_BYTES`], or the
    /// same `kid` twice.
    pub fn parse(secret: &SecretString, issuer: Option<String>) -> Result<Self, KeyError> {
        let text = secret.expose_secret();
        if !text.trim_start().starts_with('{') {
            if text.len() < MIN_SECRET_BYTES {
                return Err(KeyError::TooShort {
                    kid: derived_kid(text),
                });
            }
            return Ok(Self::new(secret, issuer));
        }
        // serde's message may quote the secret: only its category and position are kept.
        let document: KeySetDocument = serde_json::from_str(text)
            .map_err(|e| KeyError::Shape(keystone_domain::redacted_json_error(&e)))?;
        let key = |doc: &KeyDocument| {
            if doc.secret.len() < MIN_SECRET_BYTES {
                return Err(KeyError::TooShort {
                    kid: doc.kid.clone(),
                });
            }
            if doc.kid.is_empty() {
                return Err(KeyError::Shape("empty kid".to_owned()));
            }
            Ok(SigningKey::new(doc.kid.clone(), &doc.secret))
        };
        if document.current.retired_at.is_some() {
            return Err(KeyError::Shape(
                "the current key has a retired_at".to_owned(),
            ));
        }
        let current = key(&document.current)?;
        let previous = match &document.previous {
            None => None,
            Some(doc) => Some(RetiredKey {
                key: key(doc)?,
                retired_at: doc
                    .retired_at
                    .ok_or_else(|| {
                        KeyError::Shape("the previous key has no retired_at".to_owned())
                    })?
                    .timestamp(),
            }),
        };
        if previous.as_ref().is_some_and(|p| p.key.kid == current.kid) {
            return Err(KeyError::DuplicateKid(current.kid));
        }
        Ok(Self::build(current, previous, issuer))
    }

    /// The lifetime of the tokens this system issues (`JWT_TTL_SECONDS`): how long after its
    /// retirement a previous key can still have a valid token to verify.
    #[must_use]
    pub fn with_token_lifetime(mut self, lifetime: std::time::Duration) -> Self {
        self.token_lifetime =
            chrono::TimeDelta::from_std(lifetime).unwrap_or(chrono::TimeDelta::MAX);
        self
    }

    /// The lifetime set by [`Self::with_token_lifetime`], for keys re-read later.
    pub fn token_lifetime(&self) -> std::time::Duration {
        self.token_lifetime
            .to_std()
            .unwrap_or(std::time::Duration::MAX)
    }

    fn build(current: SigningKey, previous: Option<RetiredKey>, issuer: Option<String>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // Keystone tokens carry no audience.
        validation.validate_aud = false;
        match &issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                validation.set_required_spec_claims(&["exp", "iss"]);
            }
            None => validation.set_required_spec_claims(&["exp"]),
        }
        Self {
            current,
            previous,
            validation,
            issuer,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
        }
    }

    /// The `kid` new tokens carry.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// The key a token names: its `kid` among the current and previous keys, or the current
    /// key for a token without `kid`.
    fn key_for(&self, token: &str) -> Option<(&SigningKey, Option<i64>)> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        match header.kid {
            None => Some((&self.current, None)),
            Some(kid) if kid == self.current.kid => Some((&self.current, None)),
            Some(kid) => self
                .previous
                .as_ref()
                .filter(|p| p.key.kid == kid)
                .map(|p| (&p.key, Some(p.retired_at))),
        }
    }

    /// Whether a token's `iat` is acceptable for the key that signed it (`retired_at` for the
    /// previous key), at `now`.
    fn issued_in_the_keys_life(&self, iat: Option<i64>, retired_at: Option<i64>, now: i64) -> bool {
        let leeway = i64::try_from(LEEWAY_SECONDS).unwrap_or(i64::MAX);
        if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return false;
        }
        let Some(retired_at) = retired_at else {
            return true;
        };
        let signed_until = retired_at.saturating_add(RETIRED_KEY_SIGNING_ALLOWANCE.num_seconds());
        let trusted_until = signed_until
            .saturating_add(self.token_lifetime.num_seconds())
            .saturating_add(leeway);
        iat.is_some_and(|iat| iat <= signed_until) && now <= trusted_until
    }

    /// True when the header's bearer token names a `kid` that is neither the current nor the
    /// previous key: a token signed after a rotation this key set has not seen yet.
    pub fn names_unknown_key(&self, authorization: Option<&[u8]>) -> bool {
        authorization
            .and_then(bearer_token)
            .and_then(|token| jsonwebtoken::decode_header(token).ok())
            .and_then(|header| header.kid)
            .is_some_and(|kid| {
                self.current.kid != kid && self.previous.as_ref().is_none_or(|p| p.key.kid != kid)
            })
    }

    /// Verifies an `Authorization` header value (`None` when the header is absent).
    ///
    /// # Errors
    /// The SPEC §4 failure that applies: missing, malformed, or invalid/expired.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Principal, AuthError> {
        let header = authorization.ok_or(AuthError::MissingCredentials)?;
        let token = bearer_token(header).ok_or(AuthError::MalformedHeader)?;
        self.verify(token)
    }

    /// Verifies a bare token.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] for any signature, algorithm, time or claim problem.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let (key, retired_at) = self.key_for(token).ok_or(AuthError::InvalidToken)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .map_err(|_| AuthError::InvalidToken)?;
        let claims = data.claims;
        let now = chrono::Utc::now().timestamp();
        if !self.issued_in_the_keys_life(claims.iat, retired_at, now) {
            return Err(AuthError::InvalidToken);
        }
        match claims.role.as_str() {
            "admin" => Ok(Principal::Admin {
                operator_id: claims.operator_id,
            }),
            "data_collector" if claims.collector_id > 0 => Ok(Principal::Collector {
                collector_id: claims.collector_id,
                operator_id: claims.operator_id,
                issued_at: claims.iat,
            }),
            // A collector token that names no collector is not a usable credential.
            "data_collector" => Err(AuthError::InvalidToken),
            other => Ok(Principal::Unrecognized {
                role: other.to_owned(),
            }),
        }
    }

    /// Issues a token for `principal` valid for `lifetime`.
    ///
    /// # Errors
    /// [`SigningError`] if the key cannot sign (never for an HMAC secret in practice).
    pub fn issue(
        &self,
        principal: &Principal,
        lifetime: chrono::Duration,
    ) -> Result<String, SigningError> {
        let mut now = chrono::Utc::now().timestamp();
        let (collector_id, operator_id, role) = match principal {
            Principal::Admin { operator_id } => (0, operator_id.clone(), "admin".to_owned()),
            Principal::Collector {
                collector_id,
                operator_id,
                issued_at,
            } => {
                // At most a second ahead (within the leeway): see CollectorSession::admit.
                now = now.max(issued_at.unwrap_or(now));
                (
                    *collector_id,
                    operator_id.clone(),
                    "data_collector".to_owned(),
                )
            }
            Principal::Unrecognized { role } => (0, String::new(), role.clone()),
        };
        let claims = Claims {
            collector_id,
            operator_id,
            role,
            iss: self.issuer.clone(),
            exp: now + lifetime.num_seconds(),
            iat: Some(now),
            nbf: Some(now),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.current.encoding).map_err(SigningError)
    }
}

/// Extracts the token from `Bearer <token>`; the scheme is case-insensitive (RFC 7235).
fn bearer_token(header: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&SecretString::from("test-secret"), None)
    }

    #[test]
    fn issued_collector_tokens_verify() {
        let keys = keys();
        let issued_at = chrono::Utc::now().timestamp() + 5;
        let principal = Principal::Collector {
            collector_id: 7,
            operator_id: "DC001".into(),
            issued_at: Some(issued_at),
        };
        let token = keys.issue(&principal, chrono::Duration::hours(1));
        // The earliest `iat` asked for is the one the token carries.
        assert_eq!(token.ok().map(|t| keys.verify(&t)), Some(Ok(principal)));
    }

    #[test]
    fn header_shapes_map_to_spec_errors() {
        let keys = keys();
        assert_eq!(keys.authenticate(None), Err(AuthError::MissingCredentials));
        for bad in [
            &b"Token abc"[..],
            b"Bearer",
            b"Bearer ",
            b"abc",
            b"Bearer a b",
        ] {
            assert_eq!(
                keys.authenticate(Some(bad)),
                Err(AuthError::MalformedHeader),
                "{bad:?}"
            );
        }
        assert_eq!(
            keys.authenticate(Some(b"Bearer abc")),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn role_messages_match_the_spec() {
        assert_eq!(
            AuthError::RoleRequired(Role::DataCollector).to_string(),
            "data collector role required"
        );
        assert_eq!(
            AuthError::RoleRequired(Role::Admin).to_string(),
            "admin role required"
        );
    }

    #[test]
    fn unknown_roles_are_authenticated_but_authorized_for_nothing() {
        let keys = keys();
        let token = keys.issue(
            &Principal::Unrecognized {
                role: "viewer".into(),
            },
            chrono::Duration::hours(1),
        );
        let principal = token.ok().map(|t| keys.verify(&t));
        let Some(Ok(principal)) = principal else {
            unreachable!("token must verify")
        };
        assert_eq!(
            principal.require(Role::DataCollector),
            Err(AuthError::RoleRequired(Role::DataCollector))
        );
        assert_eq!(
            principal.require(Role::Admin),
            Err(AuthError::RoleRequired(Role::Admin))
        );
    }
}
