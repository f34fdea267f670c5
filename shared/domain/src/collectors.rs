//! The admin's collectors (SPEC §5.17): who may log in and work at a station, and the rules of
//! creating and changing one.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::fields::{IdValue, present, required_text};
use crate::listing::{PageRequest, enum_filter, keyword_filter, positive_filter};
use crate::{CollectorStatus, DomainError};

/// The shortest password a collector may be given.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password kept (argon2id hashes any length; this bounds the work per request).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest name or operator id kept.
pub const MAX_COLLECTOR_TEXT: usize = 200;

/// The fields `PATCH /api/v1/data-collectors/{id}` changes, as its "changes nothing" error
/// names them.
pub const COLLECTOR_PATCH_FIELDS: &str = "name, email, status, metadata or password";

/// Body of `POST /api/v1/data-collectors`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CreateCollectorBody {
    /// The organization's id, as a string or a number.
    #[serde(default)]
    #[schema(required = true)]
    pub organization_id: Option<IdValue>,
    /// 1–200 characters.
    #[serde(default)]
    #[schema(required = true)]
    pub name: Option<String>,
    /// What the collector logs in with: 1–200 characters, unique among live collectors.
    #[serde(default)]
    #[schema(required = true)]
    pub operator_id: Option<String>,
    /// At least 8 characters; there is no default password.
    #[serde(default)]
    #[schema(required = true, min_length = 8)]
    pub password: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `active` when absent.
    #[serde(default)]
    pub status: Option<CollectorStatus>,
    /// Any JSON object; `{}` when absent.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// A validated create-collector request (the password still in clear: the caller hashes it).
#[derive(Clone, PartialEq)]
pub struct CreateCollectorRequest {
    pub organization_id: i64,
    pub name: String,
    pub operator_id: String,
    pub password: String,
    pub email: Option<String>,
    pub status: CollectorStatus,
    pub metadata: Map<String, Value>,
}

impl std::fmt::Debug for CreateCollectorRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateCollectorRequest")
            .field("organization_id", &self.organization_id)
            .field("operator_id", &self.operator_id)
            .finish_non_exhaustive()
    }
}

/// A password of 8 characters up to 1 024 bytes, or [`DomainError::PasswordTooShort`] /
/// [`DomainError::PasswordTooLong`].
fn acceptable_password(password: Option<String>) -> Result<String, DomainError> {
    let password = password.unwrap_or_default();
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(DomainError::PasswordTooShort {
            min: MIN_PASSWORD_CHARS,
        });
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(DomainError::PasswordTooLong {
            max: MAX_PASSWORD_BYTES,
        });
    }
    Ok(password)
}

/// An email kept as sent (trimmed), `None` when blank.
fn email(value: Option<String>) -> Result<Option<String>, DomainError> {
    let email = value.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
    match &email {
        Some(e) if e.chars().count() > MAX_COLLECTOR_TEXT || !e.contains('@') => {
            Err(DomainError::InvalidEmail)
        }
        _ => Ok(email),
    }
}

impl CreateCollectorRequest {
    /// # Errors
    /// A missing organization, name or operator id (or one over 200 characters), a password
    /// under 8 characters, an email without `@`.
    pub fn validate(body: CreateCollectorBody) -> Result<Self, DomainError> {
        Ok(Self {
            organization_id: IdValue::positive(body.organization_id, "organization_id")?,
            name: required_text(body.name, "name", MAX_COLLECTOR_TEXT)?,
            operator_id: required_text(body.operator_id, "operator_id", MAX_COLLECTOR_TEXT)?,
            password: acceptable_password(body.password)?,
            email: email(body.email)?,
            status: body.status.unwrap_or(CollectorStatus::Active),
            metadata: body.metadata.unwrap_or_default(),
        })
    }
}

/// Body of `PATCH /api/v1/data-collectors/{id}`: any of the fields; at least one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct CollectorUpdateBody {
    #[serde(default)]
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Any status but `active` ends the collector's tokens at once.
    #[serde(default)]
    pub status: Option<CollectorStatus>,
    /// Replaces the metadata object.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// A new password (at least 8 characters); ends the collector's tokens at once.
    #[serde(default)]
    #[schema(min_length = 8)]
    pub password: Option<String>,
    /// Refused: a collector logs in with the operator id it was created with.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub operator_id: Option<Value>,
    /// Refused: a collector stays in its organization.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub organization_id: Option<Value>,
}

/// A validated collector update (a new password still in clear: the caller hashes it).
#[derive(Clone, Default, PartialEq)]
pub struct CollectorUpdateRequest {
    pub name: Option<String>,
    /// `Some(None)` clears the email.
    pub email: Option<Option<String>>,
    pub status: Option<CollectorStatus>,
    pub metadata: Option<Map<String, Value>>,
    pub password: Option<String>,
}

impl std::fmt::Debug for CollectorUpdateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorUpdateRequest")
            .field("status", &self.status)
            .field("password", &self.password.as_ref().map(|_| "<new>"))
            .finish_non_exhaustive()
    }
}

impl CollectorUpdateRequest {
    /// Whether the change ends the collector's tokens (SPEC §4): a status other than `active`
    /// or a new password.
    pub fn revokes_tokens(&self) -> bool {
        self.password.is_some() || self.status.is_some_and(|s| s != CollectorStatus::Active)
    }

    /// # Errors
    /// [`DomainError::ImmutableField`], the fields' own rules, [`DomainError::NothingToUpdate`]
    /// for a body naming no field.
    pub fn validate(body: CollectorUpdateBody) -> Result<Self, DomainError> {
        for (field, value) in [
            ("operator_id", &body.operator_id),
            ("organization_id", &body.organization_id),
        ] {
            if value.is_some() {
                return Err(DomainError::ImmutableField { field });
            }
        }
        let request = Self {
            name: body
                .name
                .map(|n| required_text(Some(n), "name", MAX_COLLECTOR_TEXT))
                .transpose()?,
            email: match body.email {
                None => None,
                Some(None) => Some(None),
                Some(Some(e)) => Some(email(Some(e))?),
            },
            status: body.status,
            metadata: body.metadata,
            password: body
                .password
                .map(|p| acceptable_password(Some(p)))
                .transpose()?,
        };
        if request == Self::default() {
            return Err(DomainError::NothingToUpdate {
                fields: COLLECTOR_PATCH_FIELDS,
            });
        }
        Ok(request)
    }
}

/// Query parameters of `GET /api/v1/data-collectors`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CollectorListParams {
    /// Statuses, comma-separated (`active,on_leave`).
    pub status: Option<String>,
    #[param(minimum = 1)]
    pub organization_id: Option<i64>,
    /// Matches the name or the operator id, ignoring case.
    pub keyword: Option<String>,
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// 0–100 000, default 0.
    #[param(minimum = 0, maximum = 100000)]
    pub offset: Option<i64>,
}

/// A validated collector list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorFilter {
    pub statuses: Vec<CollectorStatus>,
    pub organization_id: Option<i64>,
    /// Lower-cased.
    pub keyword: Option<String>,
    pub page: PageRequest,
}

impl CollectorFilter {
    /// # Errors
    /// [`DomainError::InvalidListParameter`] naming the parameter.
    pub fn validate(params: CollectorListParams) -> Result<Self, DomainError> {
        Ok(Self {
            statuses: enum_filter("status", params.status.as_deref())?,
            organization_id: positive_filter(params.organization_id, "organization_id")?,
            keyword: keyword_filter(params.keyword.as_deref())?,
            page: PageRequest::new(params.limit, params.offset)?,
        })
    }
}
