//! The admin console's batch lists (SPEC §5.15): the batch list's and a batch's task list's
//! filters.

use serde::Deserialize;

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
