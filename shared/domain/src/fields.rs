//! How request bodies spell what several endpoints take: ids as strings or numbers, and
//! fields where `null` means something else than absent.

use serde::Deserialize;

use crate::DomainError;

/// An id a client may send as a string (`"3"`, as answers carry ids) or a number (`3`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum IdValue {
    Number(i64),
    Text(String),
}

impl IdValue {
    /// The positive id, or [`DomainError::MissingField`] naming `field`.
    pub(crate) fn positive(value: Option<Self>, field: &'static str) -> Result<i64, DomainError> {
        let id = match value {
            Some(Self::Number(n)) => Some(n),
            Some(Self::Text(text)) => text.trim().parse().ok(),
            None => None,
        };
        id.filter(|id| *id > 0)
            .ok_or(DomainError::MissingField(field))
    }
}

/// Reads a field that may be absent (outer `None`), `null` (`Some(None)`) or a value.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A trimmed text of 1 to `max` characters, or [`DomainError::MissingField`] /
/// [`DomainError::TextTooLong`] naming `field`.
pub(crate) fn required_text(
    value: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<String, DomainError> {
    let text = value.map(|v| v.trim().to_owned()).unwrap_or_default();
    if text.is_empty() {
        return Err(DomainError::MissingField(field));
    }
    if text.chars().count() > max {
        return Err(DomainError::TextTooLong { field, max });
    }
    Ok(text)
}
