//! The admin console's orders (SPEC §5.14): creating one, and the order list's filters.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::fields::{IdValue, present};
use crate::listing::{PageRequest, enum_filter, keyword_filter, positive_filter};
use crate::{DomainError, MAX_TARGET_COUNT, OrderPriority, OrderStatus};

/// The longest order name kept.
pub const MAX_ORDER_NAME: usize = 200;

/// Body of `POST /api/v1/orders`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CreateOrderBody {
    /// The organization's id, as a string or a number.
    #[serde(default)]
    #[schema(required = true)]
    pub organization_id: Option<IdValue>,
    /// The scene's id, as a string or a number.
    #[serde(default)]
    #[schema(required = true)]
    pub scene_id: Option<IdValue>,
    /// 1–200 characters, unique among the organization's live orders.
    #[serde(default)]
    #[schema(required = true)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(required = true, minimum = 1, maximum = 2147483647)]
    pub target_count: Option<i64>,
    /// `normal` when absent.
    #[serde(default)]
    pub priority: Option<OrderPriority>,
    /// RFC 3339.
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    /// Any JSON object; `{}` when absent.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// A validated create-order request.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateOrderRequest {
    pub organization_id: i64,
    pub scene_id: i64,
    pub name: String,
    pub target_count: i32,
    pub priority: OrderPriority,
    pub deadline: Option<DateTime<Utc>>,
    pub metadata: Map<String, Value>,
}

impl CreateOrderRequest {
    /// # Errors
    /// A missing or non-positive id, a missing or blank name (or one over 200 characters), a
    /// target outside 1–2 147 483 647.
    pub fn validate(body: CreateOrderBody) -> Result<Self, DomainError> {
        let organization_id = IdValue::positive(body.organization_id, "organization_id")?;
        let scene_id = IdValue::positive(body.scene_id, "scene_id")?;
        let name = body.name.map(|n| n.trim().to_owned()).unwrap_or_default();
        if name.is_empty() {
            return Err(DomainError::MissingField("name"));
        }
        if name.chars().count() > MAX_ORDER_NAME {
            return Err(DomainError::OrderNameTooLong {
                max: MAX_ORDER_NAME,
            });
        }
        let target_count = body
            .target_count
            .filter(|t| (1..=MAX_TARGET_COUNT).contains(t))
            .and_then(|t| i32::try_from(t).ok())
            .ok_or(DomainError::InvalidTargetCount {
                max: MAX_TARGET_COUNT,
            })?;
        Ok(Self {
            organization_id,
            scene_id,
            name,
            target_count,
            priority: body.priority.unwrap_or(OrderPriority::Normal),
            deadline: body.deadline,
            metadata: body.metadata.unwrap_or_default(),
        })
    }

    /// What an `Idempotency-Key` is bound to: the same key with another body is refused.
    pub fn fingerprint(&self) -> String {
        serde_json::json!({
            "operation": "create_order",
            "organization_id": self.organization_id,
            "scene_id": self.scene_id,
            "name": self.name,
            "target_count": self.target_count,
            "priority": self.priority,
            "deadline": self.deadline,
            "metadata": self.metadata,
        })
        .to_string()
    }
}

/// The fields `PATCH /api/v1/orders/{id}` changes, as its "changes nothing" error names them.
pub const ORDER_PATCH_FIELDS: &str = "target_count, name, priority, deadline or metadata";

/// Why `PATCH /api/v1/orders/{id}` refuses a `status`.
pub const ORDER_STATUS_RULE: &str =
    "an order's status changes through pause, resume, cancel and finalize";

/// Body of `PATCH /api/v1/orders/{id}`: any of the fields; at least one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct OrderUpdateBody {
    /// The new target (1–2 147 483 647, not below the completed count): an open order that
    /// reaches it completes and is finalized; a completed order given more reopens.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 2147483647)]
    pub target_count: Option<Option<i64>>,
    /// 1–200 characters, unique among the organization's live orders.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub priority: Option<OrderPriority>,
    /// RFC 3339; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub deadline: Option<Option<DateTime<Utc>>>,
    /// Replaces the metadata object.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Refused: the status moves only through pause, resume, cancel and finalize.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub status: Option<Value>,
    /// Refused: an order keeps its scene.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub scene_id: Option<Value>,
    /// Refused: an order keeps its organization.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub organization_id: Option<Value>,
}

/// The descriptive fields an order update changes (absent ones stay).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderDetailsEdit {
    pub name: Option<String>,
    pub priority: Option<OrderPriority>,
    /// `Some(None)` clears the deadline.
    pub deadline: Option<Option<DateTime<Utc>>>,
    pub metadata: Option<Map<String, Value>>,
}

impl OrderDetailsEdit {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.priority.is_none()
            && self.deadline.is_none()
            && self.metadata.is_none()
    }
}

/// A validated order update.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderUpdateRequest {
    pub target: Option<crate::OrderTargetRequest>,
    pub details: OrderDetailsEdit,
}

impl OrderUpdateRequest {
    /// # Errors
    /// [`DomainError::StatusNotPatchable`], [`DomainError::ImmutableField`], a `null` target
    /// ([`DomainError::InvalidRequestBody`]), the target's and the name's rules,
    /// [`DomainError::NothingToUpdate`] for a body naming no field.
    pub fn validate(body: OrderUpdateBody) -> Result<Self, DomainError> {
        if body.status.is_some() {
            return Err(DomainError::StatusNotPatchable {
                rule: ORDER_STATUS_RULE,
            });
        }
        for (field, value) in [
            ("scene_id", &body.scene_id),
            ("organization_id", &body.organization_id),
        ] {
            if value.is_some() {
                return Err(DomainError::ImmutableField { field });
            }
        }
        let target = match body.target_count {
            None => None,
            Some(None) => {
                return Err(DomainError::InvalidRequestBody {
                    detail: "target_count: null is not a target".to_owned(),
                });
            }
            Some(Some(target_count)) => Some(crate::OrderTargetRequest::validate(
                crate::OrderTargetBody { target_count },
            )?),
        };
        let name = match body.name.map(|n| n.trim().to_owned()) {
            Some(name) if name.is_empty() => return Err(DomainError::MissingField("name")),
            Some(name) if name.chars().count() > MAX_ORDER_NAME => {
                return Err(DomainError::OrderNameTooLong {
                    max: MAX_ORDER_NAME,
                });
            }
            other => other,
        };
        let details = OrderDetailsEdit {
            name,
            priority: body.priority,
            deadline: body.deadline,
            metadata: body.metadata,
        };
        if target.is_none() && details.is_empty() {
            return Err(DomainError::NothingToUpdate {
                fields: ORDER_PATCH_FIELDS,
            });
        }
        Ok(Self { target, details })
    }
}

/// Query parameters of `GET /api/v1/orders`, as sent.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListParams {
    /// Order statuses, comma-separated (`in_progress,paused`).
    pub status: Option<String>,
    /// Priorities, comma-separated (`high,urgent`).
    pub priority: Option<String>,
    #[param(minimum = 1)]
    pub organization_id: Option<i64>,
    #[param(minimum = 1)]
    pub scene_id: Option<i64>,
    /// Matches the order's, its scene's or its organization's name, ignoring case: exact
    /// matches first, then names starting with it, then the rest.
    pub keyword: Option<String>,
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// 0–100 000, default 0.
    #[param(minimum = 0, maximum = 100000)]
    pub offset: Option<i64>,
}

/// A validated order list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderListFilter {
    pub statuses: Vec<OrderStatus>,
    pub priorities: Vec<OrderPriority>,
    pub organization_id: Option<i64>,
    pub scene_id: Option<i64>,
    /// Lower-cased.
    pub keyword: Option<String>,
    pub page: PageRequest,
}

impl OrderListFilter {
    /// # Errors
    /// [`DomainError::InvalidListParameter`] naming the parameter.
    pub fn validate(params: OrderListParams) -> Result<Self, DomainError> {
        Ok(Self {
            statuses: enum_filter("status", params.status.as_deref())?,
            priorities: enum_filter("priority", params.priority.as_deref())?,
            organization_id: positive_filter(params.organization_id, "organization_id")?,
            scene_id: positive_filter(params.scene_id, "scene_id")?,
            keyword: keyword_filter(params.keyword.as_deref())?,
            page: PageRequest::new(params.limit, params.offset)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: Value) -> CreateOrderBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn ids_come_as_strings_or_numbers_and_defaults_fill_the_rest() {
        let request = CreateOrderRequest::validate(body(serde_json::json!({
            "organization_id": "3", "scene_id": 5, "name": "  Kitchen  ", "target_count": 100
        })))
        .unwrap();
        assert_eq!((request.organization_id, request.scene_id), (3, 5));
        assert_eq!(request.name, "Kitchen");
        assert_eq!(request.priority, OrderPriority::Normal);
        assert!(request.metadata.is_empty() && request.deadline.is_none());
    }

    #[test]
    fn each_rule_names_what_is_wrong() {
        let base = serde_json::json!({"organization_id": 3, "scene_id": 5, "name": "K", "target_count": 1});
        let with = |field: &str, value: Value| {
            let mut json = base.clone();
            json[field] = value;
            CreateOrderRequest::validate(body(json))
        };
        assert_eq!(
            with("organization_id", "x".into()),
            Err(DomainError::MissingField("organization_id"))
        );
        assert_eq!(
            with("scene_id", 0.into()),
            Err(DomainError::MissingField("scene_id"))
        );
        assert_eq!(
            with("name", " ".into()),
            Err(DomainError::MissingField("name"))
        );
        assert_eq!(
            with("name", "x".repeat(201).into()),
            Err(DomainError::OrderNameTooLong { max: 200 })
        );
        for target in [0_i64, -1, i64::from(i32::MAX) + 1] {
            assert!(matches!(
                with("target_count", target.into()),
                Err(DomainError::InvalidTargetCount { .. })
            ));
        }
    }
}
