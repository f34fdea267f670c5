//! The admin console's batches (SPEC §5.15): the batch list's and a batch's task list's
//! filters, and what a batch edit may change.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::listing::{PageRequest, enum_filter, exact_filter, positive_filter};
use crate::{BatchStatus, DomainError, TaskStatus};

/// Query parameters of `GET /api/v1/batches`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchListParams {
    #[param(minimum = 1)]
    pub order_id: Option<i64>,
    #[param(minimum = 1)]
    pub workstation_id: Option<i64>,
    #[param(minimum = 1)]
    pub organization_id: Option<i64>,
    /// Batch statuses, comma-separated (`pending,active`).
    pub status: Option<String>,
    /// The public id (`batch_…`), exactly.
    pub batch_id: Option<String>,
    /// The device of the batch's workstation's robot, exactly.
    pub device_id: Option<String>,
    /// The operator id of the batch's workstation's collector, exactly.
    pub collector_operator_id: Option<String>,
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// 0–100 000, default 0.
    #[param(minimum = 0, maximum = 100000)]
    pub offset: Option<i64>,
}

/// A validated batch list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFilter {
    pub order_id: Option<i64>,
    pub workstation_id: Option<i64>,
    pub organization_id: Option<i64>,
    pub statuses: Vec<BatchStatus>,
    pub batch_id: Option<String>,
    pub device_id: Option<String>,
    pub collector_operator_id: Option<String>,
    pub page: PageRequest,
}

impl BatchFilter {
    /// Whether only the organization and status filters are set: the batch status tally then
    /// knows the total without counting batches.
    pub fn is_tallied(&self) -> bool {
        self.order_id.is_none()
            && self.workstation_id.is_none()
            && self.batch_id.is_none()
            && self.device_id.is_none()
            && self.collector_operator_id.is_none()
    }

    /// # Errors
    /// [`DomainError::InvalidListParameter`] naming the parameter.
    pub fn validate(params: BatchListParams) -> Result<Self, DomainError> {
        Ok(Self {
            order_id: positive_filter(params.order_id, "order_id")?,
            workstation_id: positive_filter(params.workstation_id, "workstation_id")?,
            organization_id: positive_filter(params.organization_id, "organization_id")?,
            statuses: enum_filter("status", params.status.as_deref())?,
            batch_id: exact_filter(params.batch_id),
            device_id: exact_filter(params.device_id),
            collector_operator_id: exact_filter(params.collector_operator_id),
            page: PageRequest::new(params.limit, params.offset)?,
        })
    }
}

/// Query parameters of `GET /api/v1/batches/{id}/tasks`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchTaskListParams {
    /// Task statuses, comma-separated (`pending,completed`).
    pub status: Option<String>,
    #[param(minimum = 1)]
    pub sop_id: Option<i64>,
    #[param(minimum = 1)]
    pub subscene_id: Option<i64>,
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// 0–100 000, default 0.
    #[param(minimum = 0, maximum = 100000)]
    pub offset: Option<i64>,
}

/// A validated task list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchTaskFilter {
    pub statuses: Vec<TaskStatus>,
    pub sop_id: Option<i64>,
    pub subscene_id: Option<i64>,
    pub page: PageRequest,
}

impl BatchTaskFilter {
    /// # Errors
    /// [`DomainError::InvalidListParameter`] naming the parameter.
    pub fn validate(params: BatchTaskListParams) -> Result<Self, DomainError> {
        Ok(Self {
            statuses: enum_filter("status", params.status.as_deref())?,
            sop_id: positive_filter(params.sop_id, "sop_id")?,
            subscene_id: positive_filter(params.subscene_id, "subscene_id")?,
            page: PageRequest::new(params.limit, params.offset)?,
        })
    }
}

/// The fields `PATCH /api/v1/batches/{id}` changes, as its "changes nothing" error names them.
pub const BATCH_PATCH_FIELDS: &str = "name, notes, metadata or status \"cancelled\"";

/// Why `PATCH /api/v1/batches/{id}` refuses a status other than `cancelled`.
pub const BATCH_STATUS_RULE: &str = "a batch's status changes here only to cancelled; recall \
     it with POST /api/v1/batches/{id}/recall, and its tasks move it otherwise";

/// Body of `PATCH /api/v1/batches/{id}`: any of the fields; at least one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct BatchUpdateBody {
    /// The batch's display name (trimmed; may be empty).
    #[serde(default)]
    pub name: Option<String>,
    /// `null` clears the notes.
    #[serde(default, deserialize_with = "crate::fields::present")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
    /// Replaces the metadata object; `null` clears it.
    #[serde(default, deserialize_with = "crate::fields::present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<Map<String, Value>>>,
    /// Only `"cancelled"`, which cancels the batch exactly as `POST
    /// /api/v1/batches/{id}/cancel` does.
    #[serde(default, deserialize_with = "crate::fields::present")]
    #[schema(value_type = Option<String>, example = "cancelled")]
    pub status: Option<Option<Value>>,
    /// Refused: a batch keeps its order.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub order_id: Option<Value>,
    /// Refused: a batch keeps its workstation.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub workstation_id: Option<Value>,
    /// Refused: a batch keeps its organization.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub organization_id: Option<Value>,
    /// Refused: a batch keeps its public id.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub batch_id: Option<Value>,
}

/// The descriptive fields a batch edit changes (absent ones stay).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchDetailsEdit {
    pub name: Option<String>,
    /// `Some(None)` clears the notes.
    pub notes: Option<Option<String>>,
    /// `Some(None)` clears the metadata.
    pub metadata: Option<Option<Map<String, Value>>>,
}

impl BatchDetailsEdit {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.notes.is_none() && self.metadata.is_none()
    }
}

/// A validated batch edit.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchUpdateRequest {
    pub details: BatchDetailsEdit,
    /// `{"status":"cancelled"}`: cancel the batch in the same transaction.
    pub cancel: bool,
}

impl BatchUpdateRequest {
    /// # Errors
    /// [`DomainError::StatusNotPatchable`] for any status but `cancelled`,
    /// [`DomainError::ImmutableField`], [`DomainError::NothingToUpdate`] for a body naming no
    /// field.
    pub fn validate(body: BatchUpdateBody) -> Result<Self, DomainError> {
        let cancel = match &body.status {
            None => false,
            Some(Some(Value::String(status))) if status == "cancelled" => true,
            Some(_) => {
                return Err(DomainError::StatusNotPatchable {
                    rule: BATCH_STATUS_RULE,
                });
            }
        };
        for (field, value) in [
            ("order_id", &body.order_id),
            ("workstation_id", &body.workstation_id),
            ("organization_id", &body.organization_id),
            ("batch_id", &body.batch_id),
        ] {
            if value.is_some() {
                return Err(DomainError::ImmutableField { field });
            }
        }
        let details = BatchDetailsEdit {
            name: body.name.map(|name| name.trim().to_owned()),
            notes: body.notes,
            metadata: body.metadata,
        };
        if !cancel && details.is_empty() {
            return Err(DomainError::NothingToUpdate {
                fields: BATCH_PATCH_FIELDS,
            });
        }
        Ok(Self { details, cancel })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(json: Value) -> Result<BatchUpdateRequest, DomainError> {
        BatchUpdateRequest::validate(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn only_cancelled_is_a_status_a_batch_edit_takes() {
        let cancel = update(serde_json::json!({"status": "cancelled"})).unwrap();
        assert!(cancel.cancel && cancel.details.is_empty());
        for status in ["recalled", "completed", "active", "CANCELLED"] {
            assert_eq!(
                update(serde_json::json!({"status": status})),
                Err(DomainError::StatusNotPatchable {
                    rule: BATCH_STATUS_RULE
                }),
                "{status}"
            );
        }
        assert!(matches!(
            update(serde_json::json!({"status": null})),
            Err(DomainError::StatusNotPatchable { .. })
        ));
    }

    #[test]
    fn null_clears_notes_and_metadata_and_absent_fields_stay() {
        let edit = update(serde_json::json!({"notes": null, "metadata": null})).unwrap();
        assert_eq!(edit.details.notes, Some(None));
        assert_eq!(edit.details.metadata, Some(None));
        assert_eq!(edit.details.name, None);
        assert!(!edit.cancel);
        let named = update(serde_json::json!({"name": "  Morning shift "})).unwrap();
        assert_eq!(named.details.name.as_deref(), Some("Morning shift"));
        assert_eq!(named.details.notes, None);
    }

    #[test]
    fn a_batch_keeps_its_place_and_an_empty_edit_is_refused() {
        assert_eq!(
            update(serde_json::json!({"workstation_id": "3"})),
            Err(DomainError::ImmutableField {
                field: "workstation_id"
            })
        );
        assert_eq!(
            update(serde_json::json!({})),
            Err(DomainError::NothingToUpdate {
                fields: BATCH_PATCH_FIELDS
            })
        );
    }
}
