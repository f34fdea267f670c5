//! The complete-task-group request of SPEC §5.1.

use serde::Deserialize;

use crate::DomainError;

/// A task group of a batch: its live tasks with one `(sop_id, subscene_id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskGroupKey {
    pub sop_id: i64,
    pub subscene_id: i64,
}

/// A task group and how many of its tasks to complete (or to reopen). `null`, strings and
/// fractions answer 400 `invalid request body`; a missing `sop_id` or `subscene_id` answers
/// 400 `invalid task group`.
// Fields are plain integers with serde defaults, so a missing field reads as 0 and gets the
// SPEC §5.1 message, while `null` fails to deserialize (SPEC §5: `null` is a wrong type).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CompleteTasksBody {
    /// How many tasks; 1 when absent.
    #[serde(default = "default_quantity")]
    #[schema(minimum = 1, default = 1)]
    pub quantity: i64,
    #[serde(default)]
    #[schema(required = true, minimum = 1)]
    pub sop_id: i64,
    #[serde(default)]
    #[schema(required = true, minimum = 1)]
    pub subscene_id: i64,
}

const fn default_quantity() -> i64 {
    1
}

/// A validated request: a positive quantity of one task group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompleteTasksRequest {
    pub quantity: i64,
    pub group: TaskGroupKey,
}

impl CompleteTasksRequest {
    /// Applies the body checks of SPEC §5.1 in the table's order.
    ///
    /// # Errors
    /// [`DomainError::QuantityTooSmall`] then [`DomainError::InvalidTaskGroup`].
    pub fn validate(body: CompleteTasksBody) -> Result<Self, DomainError> {
        if body.quantity < 1 {
            return Err(DomainError::QuantityTooSmall);
        }
        if body.sop_id <= 0 || body.subscene_id <= 0 {
            return Err(DomainError::InvalidTaskGroup);
        }
        Ok(Self {
            quantity: body.quantity,
            group: TaskGroupKey {
                sop_id: body.sop_id,
                subscene_id: body.subscene_id,
            },
        })
    }

    /// The normalized form two requests must share to count as the same request under one
    /// idempotency key.
    pub fn fingerprint(&self, batch_id: i64) -> String {
        format!(
            "complete-tasks batch={batch_id} sop_id={} subscene_id={} quantity={}",
            self.group.sop_id, self.group.subscene_id, self.quantity
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<CompleteTasksRequest, String> {
        let body: CompleteTasksBody = serde_json::from_str(json).map_err(|e| e.to_string())?;
        CompleteTasksRequest::validate(body).map_err(|e| e.to_string())
    }

    #[test]
    fn quantity_defaults_to_one() {
        let request = parse(r#"{"sop_id":8,"subscene_id":3}"#);
        assert_eq!(
            request,
            Ok(CompleteTasksRequest {
                quantity: 1,
                group: TaskGroupKey {
                    sop_id: 8,
                    subscene_id: 3
                }
            })
        );
    }

    #[test]
    fn wrong_types_do_not_deserialize() {
        for json in [
            r#"{"quantity":"3","sop_id":8,"subscene_id":3}"#,
            r#"{"quantity":1.5,"sop_id":8,"subscene_id":3}"#,
            r#"{"quantity":null,"sop_id":8,"subscene_id":3}"#,
            r#"{"quantity":1,"sop_id":null,"subscene_id":3}"#,
        ] {
            assert!(
                serde_json::from_str::<CompleteTasksBody>(json).is_err(),
                "{json}"
            );
        }
    }

    /// serde maps a JSON array onto a struct's fields, which is why the HTTP layer insists on
    /// an object before deserializing.
    #[test]
    fn arrays_deserialize_positionally_so_the_http_layer_must_refuse_them() {
        assert!(serde_json::from_str::<CompleteTasksBody>("[1,2,3]").is_ok());
    }

    #[test]
    fn quantity_is_checked_before_the_group() {
        assert_eq!(
            parse(r#"{"quantity":0}"#),
            Err("quantity must be >= 1".to_owned())
        );
        assert_eq!(
            parse(r#"{"quantity":2}"#),
            Err("invalid task group".to_owned())
        );
        assert_eq!(
            parse(r#"{"quantity":2,"sop_id":1,"subscene_id":-3}"#),
            Err("invalid task group".to_owned())
        );
    }
}
