//! Workstation bindings (SPEC §5.17): which robot and which collector form a station, and the
//! rules of binding, rebinding and changing one.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::fields::{IdValue, present, required_text};
use crate::{DomainError, WorkstationStatus};

/// The longest station name kept.
pub const MAX_STATION_NAME: usize = 200;

/// How many of a station's bindings its view lists, newest first.
pub const MAX_LISTED_BINDINGS: i64 = 100;

/// The fields `PATCH /api/v1/stations/{id}` changes, as its "changes nothing" error names them.
pub const STATION_PATCH_FIELDS: &str = "name, status, metadata, robot_id or data_collector_id";

/// Body of `POST /api/v1/stations`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CreateStationBody {
    /// A live robot without a current station, as a string or a number.
    #[serde(default)]
    #[schema(required = true)]
    pub robot_id: Option<IdValue>,
    /// An active collector without a current station, as a string or a number.
    #[serde(default)]
    #[schema(required = true)]
    pub data_collector_id: Option<IdValue>,
    /// 1–200 characters; the robot's device id and the collector's operator id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Any JSON object; `{}` when absent.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// A validated bind request.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateStationRequest {
    pub robot_id: i64,
    pub data_collector_id: i64,
    pub name: Option<String>,
    pub metadata: Map<String, Value>,
}

impl CreateStationRequest {
    /// # Errors
    /// A missing robot or collector, a blank name or one over 200 characters.
    pub fn validate(body: CreateStationBody) -> Result<Self, DomainError> {
        Ok(Self {
            robot_id: IdValue::positive(body.robot_id, "robot_id")?,
            data_collector_id: IdValue::positive(body.data_collector_id, "data_collector_id")?,
            name: body
                .name
                .map(|n| required_text(Some(n), "name", MAX_STATION_NAME))
                .transpose()?,
            metadata: body.metadata.unwrap_or_default(),
        })
    }
}

/// Body of `PATCH /api/v1/stations/{id}`: any of the fields; at least one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct StationUpdateBody {
    #[serde(default)]
    pub name: Option<String>,
    /// `break` or `offline` are set as sent; `active` and `inactive` follow the station's
    /// batches, so asking for one brings the station back from a break or offline and is
    /// refused when its batches say the other.
    #[serde(default)]
    pub status: Option<WorkstationStatus>,
    /// Replaces the metadata object; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<Map<String, Value>>>,
    /// Another robot: a rebind.
    #[serde(default)]
    pub robot_id: Option<IdValue>,
    /// Another collector: a rebind.
    #[serde(default)]
    pub data_collector_id: Option<IdValue>,
    /// Refused: a station stays in its collector's organization.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub organization_id: Option<Value>,
    /// Refused: a station's factory is its robot's.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub factory_id: Option<Value>,
}

/// A validated station update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StationUpdateRequest {
    pub name: Option<String>,
    pub status: Option<WorkstationStatus>,
    /// `Some(None)` clears the metadata.
    pub metadata: Option<Option<Map<String, Value>>>,
    pub robot_id: Option<i64>,
    pub data_collector_id: Option<i64>,
}

impl StationUpdateRequest {
    /// # Errors
    /// [`DomainError::ImmutableField`], the fields' own rules, [`DomainError::NothingToUpdate`]
    /// for a body naming no field.
    pub fn validate(body: StationUpdateBody) -> Result<Self, DomainError> {
        for (field, value) in [
            ("organization_id", &body.organization_id),
            ("factory_id", &body.factory_id),
        ] {
            if value.is_some() {
                return Err(DomainError::ImmutableField { field });
            }
        }
        let request = Self {
            name: body
                .name
                .map(|n| required_text(Some(n), "name", MAX_STATION_NAME))
                .transpose()?,
            status: body.status,
            metadata: body.metadata,
            robot_id: body
                .robot_id
                .map(|id| IdValue::positive(Some(id), "robot_id"))
                .transpose()?,
            data_collector_id: body
                .data_collector_id
                .map(|id| IdValue::positive(Some(id), "data_collector_id"))
                .transpose()?,
        };
        if request == Self::default() {
            return Err(DomainError::NothingToUpdate {
                fields: STATION_PATCH_FIELDS,
            });
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(body: Value) -> Result<StationUpdateRequest, DomainError> {
        StationUpdateRequest::validate(serde_json::from_value(body).expect("body"))
    }

    #[test]
    fn a_bind_needs_both_ids_and_takes_them_as_strings_or_numbers() {
        let bind = |body: Value| {
            CreateStationRequest::validate(serde_json::from_value(body).expect("body"))
        };
        assert_eq!(
            bind(json!({"robot_id": "3", "data_collector_id": 4}))
                .map(|r| (r.robot_id, r.data_collector_id)),
            Ok((3, 4))
        );
        assert_eq!(
            bind(json!({"robot_id": 3})),
            Err(DomainError::MissingField("data_collector_id"))
        );
        assert_eq!(
            bind(json!({"robot_id": 0, "data_collector_id": 4})),
            Err(DomainError::MissingField("robot_id"))
        );
        assert_eq!(
            bind(json!({"robot_id": 3, "data_collector_id": 4, "name": "  "})),
            Err(DomainError::MissingField("name"))
        );
    }

    #[test]
    fn a_patch_names_something_it_may_change() {
        assert_eq!(
            update(json!({})),
            Err(DomainError::NothingToUpdate {
                fields: STATION_PATCH_FIELDS
            })
        );
        assert_eq!(
            update(json!({"organization_id": 2})),
            Err(DomainError::ImmutableField {
                field: "organization_id"
            })
        );
        assert_eq!(
            update(json!({"metadata": null})).map(|r| r.metadata),
            Ok(Some(None))
        );
        assert_eq!(
            update(json!({"robot_id": "7", "status": "break"})).map(|r| (r.robot_id, r.status)),
            Ok((Some(7), Some(WorkstationStatus::Break)))
        );
        assert_eq!(
            update(json!({"name": "x".repeat(MAX_STATION_NAME + 1)})),
            Err(DomainError::TextTooLong {
                field: "name",
                max: MAX_STATION_NAME
            })
        );
    }
}
