//! The rules every list shares (SPEC §5 "Lists"): Keystone's envelope and its `limit` /
//! `offset` parameters, and comma-separated enum filters.

use std::str::FromStr;

use serde::Serialize;

use crate::DomainError;

/// `limit` when none is given.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest `limit`; more is refused, not cut.
pub const MAX_LIMIT: i64 = 100;
/// The largest `offset`: beyond it a client should narrow its filters (a deep offset makes
/// PostgreSQL walk every skipped row).
pub const MAX_OFFSET: i64 = 100_000;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub offset: i64,
}

impl PageRequest {
    /// # Errors
    /// [`DomainError::InvalidListParameter`] for a `limit` outside 1–100 or an `offset`
    /// outside 0–100 000.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, DomainError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(DomainError::InvalidListParameter {
                parameter: "limit",
                detail: format!("must be between 1 and {MAX_LIMIT}"),
            });
        }
        let offset = offset.unwrap_or(0);
        if !(0..=MAX_OFFSET).contains(&offset) {
            return Err(DomainError::InvalidListParameter {
                parameter: "offset",
                detail: format!("must be between 0 and {MAX_OFFSET}"),
            });
        }
        Ok(Self { limit, offset })
    }
}

/// Keystone's list envelope.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Every item the filters match.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub has_next: bool,
    pub has_prev: bool,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, total: i64, page: PageRequest) -> Self {
        let shown = i64::try_from(items.len()).unwrap_or(i64::MAX);
        Self {
            has_next: page.offset.saturating_add(shown) < total,
            has_prev: page.offset > 0,
            items,
            total,
            limit: page.limit,
            offset: page.offset,
        }
    }
}

/// A comma-separated filter of a closed set (`status=active,paused`): each value must be one
/// of the set, blanks and repeats are dropped; an absent or empty parameter filters nothing.
///
/// # Errors
/// [`DomainError::InvalidListParameter`] naming `parameter` for a value outside the set.
pub fn enum_filter<T: FromStr + PartialEq>(
    parameter: &'static str,
    raw: Option<&str>,
) -> Result<Vec<T>, DomainError> {
    let mut values = Vec::new();
    for text in raw.unwrap_or_default().split(',').map(str::trim) {
        if text.is_empty() {
            continue;
        }
        let value = text
            .parse::<T>()
            .map_err(|_| DomainError::InvalidListParameter {
                parameter,
                detail: format!("unknown value {text:?}"),
            })?;
        if !values.contains(&value) {
            values.push(value);
        }
    }
    Ok(values)
}

/// A positive id filter (`organization_id=3`); absent filters nothing.
///
/// # Errors
/// [`DomainError::InvalidListParameter`] naming `parameter` for 0 or less.
pub fn positive_filter(
    value: Option<i64>,
    parameter: &'static str,
) -> Result<Option<i64>, DomainError> {
    match value {
        Some(id) if id <= 0 => Err(DomainError::InvalidListParameter {
            parameter,
            detail: "must be a positive id".to_owned(),
        }),
        other => Ok(other),
    }
}

/// An exact-match text filter (`device_id=axon-1`): trimmed; blank filters nothing.
pub fn exact_filter(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// A keyword filter: trimmed, lower-cased, at most 100 characters; `None` when blank. `%`,
/// `_` and `\` are escaped for a `LIKE` pattern.
///
/// # Errors
/// [`DomainError::InvalidListParameter`] for a keyword over 100 characters.
pub fn keyword_filter(raw: Option<&str>) -> Result<Option<String>, DomainError> {
    let keyword = raw.unwrap_or_default().trim().to_lowercase();
    if keyword.is_empty() {
        return Ok(None);
    }
    if keyword.chars().count() > 100 {
        return Err(DomainError::InvalidListParameter {
            parameter: "keyword",
            detail: "must be at most 100 characters".to_owned(),
        });
    }
    Ok(Some(keyword))
}

/// `text` escaped for use inside a `LIKE` pattern (with the default `\` escape).
pub fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrderStatus;

    #[test]
    fn pages_are_bounded_and_say_where_they_are() {
        assert_eq!(
            PageRequest::new(None, None),
            Ok(PageRequest {
                limit: 50,
                offset: 0
            })
        );
        assert!(PageRequest::new(Some(101), None).is_err());
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(None, Some(-1)).is_err());
        assert!(PageRequest::new(None, Some(MAX_OFFSET + 1)).is_err());
        let page = PageRequest::new(Some(2), Some(2)).unwrap();
        let shown = Page::new(vec![1, 2], 5, page);
        assert!(shown.has_next && shown.has_prev);
        let last = Page::new(vec![5], 5, PageRequest::new(Some(2), Some(4)).unwrap());
        assert!(!last.has_next && last.has_prev);
    }

    #[test]
    fn enum_filters_take_known_values_only() {
        assert_eq!(
            enum_filter::<OrderStatus>("status", Some("paused, in_progress,,paused")),
            Ok(vec![OrderStatus::Paused, OrderStatus::InProgress])
        );
        assert_eq!(enum_filter::<OrderStatus>("status", None), Ok(vec![]));
        assert!(matches!(
            enum_filter::<OrderStatus>("status", Some("paused,done")),
            Err(DomainError::InvalidListParameter {
                parameter: "status",
                ..
            })
        ));
    }

    #[test]
    fn keywords_are_trimmed_lowered_and_escaped_for_like() {
        assert_eq!(
            keyword_filter(Some("  Kitchen ")),
            Ok(Some("kitchen".to_owned()))
        );
        assert_eq!(keyword_filter(Some("   ")), Ok(None));
        assert!(keyword_filter(Some(&"x".repeat(101))).is_err());
        assert_eq!(like_escaped(r"50%_a\b"), r"50\%\_a\\b");
    }
}
