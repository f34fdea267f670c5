//! Admin dispatch requests: adjust a batch's task groups (SPEC §5.2) and create a batch
//! (SPEC §5.3).

use std::collections::HashMap;

use serde::Deserialize;

use crate::{DomainError, TaskGroupKey};

/// Most tasks one create-batch request may ask for.
pub const MAX_TASKS_PER_CREATE: i64 = 1000;

/// Most tasks one adjust-batch request may insert (SPEC §5.2): bounds the time the order stays
/// locked, whatever the quantities asked for.
pub const MAX_TASKS_PER_ADJUST: i64 = 10_000;

/// One `task_groups` entry: a task group (by its sop and subscene) and a quantity.
// Missing ids read as 0 and are refused as an invalid group; `quantity` has no default.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TaskGroupQuantityBody {
    #[serde(default)]
    #[schema(required = true, minimum = 1)]
    pub sop_id: i64,
    #[serde(default)]
    #[schema(required = true, minimum = 1)]
    pub subscene_id: i64,
    /// The group's live task count after an adjustment (0 removes every removable task), or
    /// the tasks to create in a new batch (at least 1).
    #[schema(minimum = 0)]
    pub quantity: i64,
}

/// A validated `task_groups` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupQuantity {
    pub group: TaskGroupKey,
    pub quantity: i64,
}

/// Validates a `task_groups` list: not empty, positive ids, `quantity >= min_quantity`, and
/// no group named twice. Entries are checked in order, so the first bad index is reported.
///
/// # Errors
/// The first broken rule.
pub fn validate_task_groups(
    entries: Vec<TaskGroupQuantityBody>,
    min_quantity: i64,
) -> Result<Vec<GroupQuantity>, DomainError> {
    if entries.is_empty() {
        return Err(DomainError::TaskGroupsEmpty);
    }
    let mut seen: HashMap<TaskGroupKey, usize> = HashMap::with_capacity(entries.len());
    let mut groups = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        if entry.sop_id <= 0 || entry.subscene_id <= 0 {
            return Err(DomainError::InvalidTaskGroupAt { index });
        }
        if entry.quantity < min_quantity {
            return Err(DomainError::InvalidQuantityAt {
                index,
                min: min_quantity,
            });
        }
        let group = TaskGroupKey {
            sop_id: entry.sop_id,
            subscene_id: entry.subscene_id,
        };
        if let Some(first) = seen.insert(group, index) {
            return Err(DomainError::DuplicateTaskGroup {
                first,
                second: index,
                sop_id: group.sop_id,
                subscene_id: group.subscene_id,
            });
        }
        groups.push(GroupQuantity {
            group,
            quantity: entry.quantity,
        });
    }
    Ok(groups)
}

/// Body of `POST /api/v1/batches/{id}/tasks`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AdjustBatchBody {
    #[serde(default)]
    #[schema(required = true, min_items = 1)]
    pub task_groups: Vec<TaskGroupQuantityBody>,
}

/// Target live task counts per named group; unnamed groups keep theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustBatchRequest {
    pub targets: Vec<GroupQuantity>,
}

impl AdjustBatchRequest {
    /// # Errors
    /// See [`validate_task_groups`]; quantities may be 0.
    pub fn validate(body: AdjustBatchBody) -> Result<Self, DomainError> {
        Ok(Self {
            targets: validate_task_groups(body.task_groups, 0)?,
        })
    }
}

/// Body of `POST /api/v1/batches`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CreateBatchBody {
    #[serde(default)]
    #[schema(required = true, minimum = 1)]
    pub order_id: i64,
    #[serde(default)]
    #[schema(required = true, minimum = 1)]
    pub workstation_id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(required = true, min_items = 1)]
    pub task_groups: Vec<TaskGroupQuantityBody>,
}

/// A validated create-batch request.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateBatchRequest {
    pub order_id: i64,
    pub workstation_id: i64,
    pub name: Option<String>,
    pub notes: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub groups: Vec<GroupQuantity>,
}

impl CreateBatchRequest {
    /// What an `Idempotency-Key` is bound to: the same key with another body is refused.
    pub fn fingerprint(&self) -> String {
        let groups: Vec<[i64; 3]> = self
            .groups
            .iter()
            .map(|g| [g.group.sop_id, g.group.subscene_id, g.quantity])
            .collect();
        serde_json::json!({
            "operation": "create_batch",
            "order_id": self.order_id,
            "workstation_id": self.workstation_id,
            "name": self.name,
            "notes": self.notes,
            "metadata": self.metadata,
            "groups": groups,
        })
        .to_string()
    }

    /// Total tasks the batch will hold.
    pub fn total(&self) -> i64 {
        self.groups.iter().map(|g| g.quantity).sum()
    }

    /// # Errors
    /// Missing ids, then [`validate_task_groups`] (quantities ≥ 1), then the 1000-task cap.
    pub fn validate(body: CreateBatchBody) -> Result<Self, DomainError> {
        if body.order_id <= 0 {
            return Err(DomainError::MissingField("order_id"));
        }
        if body.workstation_id <= 0 {
            return Err(DomainError::MissingField("workstation_id"));
        }
        let request = Self {
            order_id: body.order_id,
            workstation_id: body.workstation_id,
            name: body.name,
            notes: body.notes,
            metadata: body.metadata.filter(|m| !m.is_null()),
            groups: validate_task_groups(body.task_groups, 1)?,
        };
        // Quantities are each ≥ 1 and at most i64::MAX; saturate so the cap check cannot wrap.
        let total = request
            .groups
            .iter()
            .fold(0_i64, |sum, g| sum.saturating_add(g.quantity));
        if total > MAX_TASKS_PER_CREATE {
            return Err(DomainError::TooManyTasks {
                requested: total,
                max: MAX_TASKS_PER_CREATE,
            });
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(json: &str, min: i64) -> Result<Vec<GroupQuantity>, DomainError> {
        let entries: Vec<TaskGroupQuantityBody> =
            serde_json::from_str(json).map_err(|e| DomainError::InvalidRequestBody {
                detail: e.to_string(),
            })?;
        validate_task_groups(entries, min)
    }

    #[test]
    fn task_group_lists_are_checked_entry_by_entry() {
        assert_eq!(groups("[]", 0), Err(DomainError::TaskGroupsEmpty));
        assert_eq!(
            groups(
                r#"[{"sop_id":1,"subscene_id":1,"quantity":1},{"sop_id":0,"subscene_id":1,"quantity":1}]"#,
                0
            ),
            Err(DomainError::InvalidTaskGroupAt { index: 1 })
        );
        assert_eq!(
            groups(r#"[{"sop_id":1,"subscene_id":1,"quantity":0}]"#, 1),
            Err(DomainError::InvalidQuantityAt { index: 0, min: 1 })
        );
        assert_eq!(
            groups(
                r#"[{"sop_id":1,"subscene_id":2,"quantity":1},{"sop_id":3,"subscene_id":2,"quantity":1},{"sop_id":1,"subscene_id":2,"quantity":5}]"#,
                0
            ),
            Err(DomainError::DuplicateTaskGroup {
                first: 0,
                second: 2,
                sop_id: 1,
                subscene_id: 2
            })
        );
        assert!(groups(r#"[{"sop_id":1,"subscene_id":2,"quantity":0}]"#, 0).is_ok());
    }

    #[test]
    fn create_requests_need_ids_and_at_most_1000_tasks() {
        let body = |json: &str| CreateBatchRequest::validate(serde_json::from_str(json).unwrap());
        assert_eq!(
            body(r#"{"workstation_id":1}"#),
            Err(DomainError::MissingField("order_id"))
        );
        assert_eq!(
            body(r#"{"order_id":1}"#),
            Err(DomainError::MissingField("workstation_id"))
        );
        assert_eq!(
            body(
                r#"{"order_id":1,"workstation_id":1,"task_groups":[{"sop_id":1,"subscene_id":1,"quantity":600},{"sop_id":2,"subscene_id":1,"quantity":401}]}"#
            ),
            Err(DomainError::TooManyTasks {
                requested: 1001,
                max: 1000
            })
        );
        let ok = body(
            r#"{"order_id":1,"workstation_id":1,"metadata":null,"task_groups":[{"sop_id":1,"subscene_id":1,"quantity":1000}]}"#,
        );
        assert!(matches!(ok, Ok(CreateBatchRequest { metadata: None, .. })));
    }
}
