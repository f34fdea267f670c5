//! The dispatch forms' reference data (SPEC §5.16): the list parameters of stations, SOPs,
//! scenes and robot types.

use serde::Deserialize;

use crate::listing::{PageRequest, enum_filter, exact_filter, keyword_filter, positive_filter};
use crate::{DomainError, WorkstationStatus};

/// Parameters every reference list takes.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReferenceListParams {
    /// Matches the name (a SOP's slug or description), ignoring case, anywhere in it.
    pub keyword: Option<String>,
    /// Scenes only: those of this factory.
    #[param(minimum = 1)]
    pub factory_id: Option<i64>,
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// 0–100 000, default 0.
    #[param(minimum = 0, maximum = 100000)]
    pub offset: Option<i64>,
}

/// A validated reference list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceFilter {
    /// Lower-cased.
    pub keyword: Option<String>,
    pub factory_id: Option<i64>,
    pub page: PageRequest,
}

impl ReferenceFilter {
    /// # Errors
    /// [`DomainError::InvalidListParameter`] naming the parameter.
    pub fn validate(params: ReferenceListParams) -> Result<Self, DomainError> {
        Ok(Self {
            keyword: keyword_filter(params.keyword.as_deref())?,
            factory_id: positive_filter(params.factory_id, "factory_id")?,
            page: PageRequest::new(params.limit, params.offset)?,
        })
    }
}

/// Query parameters of `GET /api/v1/stations`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StationListParams {
    /// Workstation statuses, comma-separated (`active,break`).
    pub status: Option<String>,
    #[param(minimum = 1)]
    pub organization_id: Option<i64>,
    #[param(minimum = 1)]
    pub factory_id: Option<i64>,
    #[param(minimum = 1)]
    pub robot_type_id: Option<i64>,
    /// The robot's device id, exactly.
    pub device_id: Option<String>,
    /// The collector's operator id, exactly.
    pub collector_operator_id: Option<String>,
    /// Matches the workstation's name, ignoring case, anywhere in it.
    pub keyword: Option<String>,
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// 0–100 000, default 0.
    #[param(minimum = 0, maximum = 100000)]
    pub offset: Option<i64>,
}

/// A validated station list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationFilter {
    pub statuses: Vec<WorkstationStatus>,
    pub organization_id: Option<i64>,
    pub factory_id: Option<i64>,
    pub robot_type_id: Option<i64>,
    pub device_id: Option<String>,
    pub collector_operator_id: Option<String>,
    /// Lower-cased.
    pub keyword: Option<String>,
    pub page: PageRequest,
}

impl StationFilter {
    /// # Errors
    /// [`DomainError::InvalidListParameter`] naming the parameter.
    pub fn validate(params: StationListParams) -> Result<Self, DomainError> {
        Ok(Self {
            statuses: enum_filter("status", params.status.as_deref())?,
            organization_id: positive_filter(params.organization_id, "organization_id")?,
            factory_id: positive_filter(params.factory_id, "factory_id")?,
            robot_type_id: positive_filter(params.robot_type_id, "robot_type_id")?,
            device_id: exact_filter(params.device_id),
            collector_operator_id: exact_filter(params.collector_operator_id),
            keyword: keyword_filter(params.keyword.as_deref())?,
            page: PageRequest::new(params.limit, params.offset)?,
        })
    }
}
