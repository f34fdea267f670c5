//! Extractors whose rejections are [`ApiError`]s, so malformed requests get the same JSON
//! error shape as every other failure.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use keystone_auth::{Principal, Role};
use keystone_domain::{CollectorSession, DomainError, parse_positive_id};
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState};

/// A JSON object body: 413 past [`crate::MAX_BODY_BYTES`], 400 `invalid request body` for
/// anything that is not a JSON object of the expected shape (serde would otherwise accept an
/// array for a struct). The `Content-Type` is not insisted on: phones and scripts send all
/// sorts.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                DomainError::InvalidRequestBody {
                    detail: rejection.body_text(),
                }
                .into()
            }
        })?;
        let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !is_object {
            let detail = "the body must be a JSON object".to_owned();
            return Err(DomainError::InvalidRequestBody { detail }.into());
        }
        // serde_json checks UTF-8 only in the strings it decodes: bad bytes inside a field it
        // skips would pass. The whole body must be UTF-8 (SPEC §5).
        let text = std::str::from_utf8(&bytes).map_err(|e| DomainError::InvalidRequestBody {
            detail: format!("the body is not valid UTF-8: {e}"),
        })?;
        // A NUL can only arrive escaped (`\u0000`): JSON forbids raw control characters.
        if text.contains("\\u0000")
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
            && let Some(field) = nul_position(&value, String::new())
        {
            return Err(DomainError::UnstorableText { field }.into());
        }
        serde_json::from_str(text).map(Json).map_err(|e| {
            DomainError::InvalidRequestBody {
                detail: e.to_string(),
            }
            .into()
        })
    }
}

/// Where the first NUL character of a JSON document sits, as a path (`name`,
/// `metadata.note`, `task_groups[1]`); a NUL inside an object key names that object.
fn nul_position(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let label = |path: String| {
        if path.is_empty() {
            "the body".to_owned()
        } else {
            path
        }
    };
    match value {
        Value::String(text) => text.contains('\0').then(|| label(path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_position(item, format!("{path}[{index}]"))),
        Value::Object(members) => members.iter().find_map(|(key, member)| {
            if key.contains('\0') {
                return Some(label(path.clone()));
            }
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            nul_position(member, child)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// The address a request came from, for login throttling: API Gateway's `sourceIp` in
/// Lambda (set by API Gateway from the TCP connection; a client cannot forge it the way it
/// can `X-Forwarded-For`), the peer address locally, `None` when neither is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        use lambda_http::request::RequestContext;
        if let Some(RequestContext::ApiGatewayV2(context)) =
            parts.extensions.get::<RequestContext>()
            && let Some(ip) = context.http.source_ip.clone()
        {
            return Ok(Self(Some(ip)));
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_string());
        Ok(Self(peer))
    }
}

/// Any principal with a valid token (the role is checked by the narrower extractors).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        Ok(Self(state.jwt.authenticate(header).await?))
    }
}

/// A data collector's token. Whether its collector may still use it is checked by the
/// request's first read (SPEC §4), with [`CollectorSession::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectorAuth {
    pub session: CollectorSession,
}

impl FromRequestParts<AppState> for CollectorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        match principal.require(Role::DataCollector)? {
            Principal::Collector {
                collector_id,
                issued_at,
                ..
            } => Ok(Self {
                session: CollectorSession {
                    collector_id: *collector_id,
                    issued_at: *issued_at,
                },
            }),
            _ => Err(keystone_auth::AuthError::RoleRequired(Role::DataCollector).into()),
        }
    }
}

/// An admin's token, and who the admin is (whose idempotency keys a request's key is among).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAuth {
    pub operator_id: String,
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        principal.require(Role::Admin)?;
        match principal {
            Principal::Admin { operator_id } => Ok(Self { operator_id }),
            _ => Err(ApiError::Auth(keystone_auth::AuthError::RoleRequired(
                Role::Admin,
            ))),
        }
    }
}

/// An admin's or a data collector's token, for endpoints open to both (each then decides what
/// the collector may see or do); any other role gets 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaffAuth {
    Admin { operator_id: String },
    Collector(CollectorSession),
}

impl FromRequestParts<AppState> for StaffAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        match principal {
            Principal::Admin { operator_id } => Ok(Self::Admin { operator_id }),
            Principal::Collector {
                collector_id,
                issued_at,
                ..
            } => Ok(Self::Collector(CollectorSession {
                collector_id,
                issued_at,
            })),
            Principal::Unrecognized { .. } => Err(keystone_auth::AuthError::UnsupportedRole.into()),
        }
    }
}

/// What a path id names, and the error for one that is not a positive 64-bit integer.
pub trait IdKind: Send + Sync {
    fn invalid() -> DomainError;
}

/// The batch of `/batches/{id}/…`.
#[derive(Debug)]
pub struct BatchKind;

impl IdKind for BatchKind {
    fn invalid() -> DomainError {
        DomainError::InvalidBatchId
    }
}

/// The order of `/orders/{id}/…`.
#[derive(Debug)]
pub struct OrderKind;

impl IdKind for OrderKind {
    fn invalid() -> DomainError {
        DomainError::InvalidOrderId
    }
}

/// The collector of `/data-collectors/{id}`.
#[derive(Debug)]
pub struct CollectorKind;

impl IdKind for CollectorKind {
    fn invalid() -> DomainError {
        DomainError::InvalidCollectorId
    }
}

/// The station binding of `/stations/{id}`.
#[derive(Debug)]
pub struct StationKind;

impl IdKind for StationKind {
    fn invalid() -> DomainError {
        DomainError::InvalidStationId
    }
}

/// The route's single `{id}`, parsed as a positive `i64`.
#[derive(Debug)]
pub struct PathId<K> {
    pub id: i64,
    kind: PhantomData<K>,
}

impl<K: IdKind, S: Send + Sync> FromRequestParts<S> for PathId<K> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Rejected(K::invalid()))?;
        parse_positive_id(&raw)
            .map(|id| Self {
                id,
                kind: PhantomData,
            })
            .ok_or_else(|| ApiError::Rejected(K::invalid()))
    }
}

#[cfg(test)]
mod tests {
    use super::nul_position;
    use serde_json::json;

    #[test]
    fn a_nul_is_found_wherever_it_sits_and_named_by_its_path() {
        let found = |value: serde_json::Value| nul_position(&value, String::new());
        assert_eq!(
            found(json!({"account": "DC\u{0}1"})).as_deref(),
            Some("account")
        );
        assert_eq!(
            found(json!({"metadata": {"a": [1, {"note": "x\u{0}"}]}})).as_deref(),
            Some("metadata.a[1].note")
        );
        assert_eq!(
            found(json!({"metadata": {"k\u{0}": 1}})).as_deref(),
            Some("metadata")
        );
        assert_eq!(found(json!({"k\u{0}": 1})).as_deref(), Some("the body"));
        assert_eq!(found(json!({"name": "\\u0000 is six characters"})), None);
    }
}

/// A list's query parameters: a value of the wrong type (`limit=ten`) or an unknown parameter
/// shape is a 400 naming the query, like the rules the list checks after parsing (SPEC §5
/// "Lists").
#[derive(Debug, Clone)]
pub struct ListQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ListQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(params)) => Ok(Self(params)),
            Err(rejection) => Err(DomainError::InvalidListParameter {
                parameter: "query",
                detail: rejection.body_text(),
            }
            .into()),
        }
    }
}
