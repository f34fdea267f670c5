//! Every way a request can break a rule of the product, with the figures the client needs.
//!
//! The `Display` text is the client-facing message of SPEC §5; the HTTP layer picks the
//! status code and turns the fields into the extra members of the error body.

use crate::status::{BatchStatus, OrderStatus};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid batch id")]
    InvalidBatchId,
    #[error("invalid request body")]
    InvalidRequestBody { detail: String },
    #[error("quantity must be >= 1")]
    QuantityTooSmall,
    #[error("invalid task group")]
    InvalidTaskGroup,
    #[error("invalid idempotency key")]
    InvalidIdempotencyKey,
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    #[error("collector not found")]
    CollectorNotFound,
    #[error("workstation not assigned")]
    WorkstationNotAssigned,
    #[error("batch not found")]
    BatchNotFound,
    #[error("batch is not assigned to current workstation")]
    BatchNotOnWorkstation,
    #[error("workstation robot type requires the axon workflow")]
    RequiresAxon,
    #[error("order is cancelled")]
    OrderCancelled { order_status: OrderStatus },
    #[error("batch is {current_status}; only pending or active batches accept task completions")]
    BatchNotOpen {
        current_status: BatchStatus,
        completed_count: i64,
        task_count: i64,
    },
    #[error("quantity {requested} exceeds the batch's {task_count} live tasks")]
    QuantityExceedsBatch { task_count: i64, requested: i64 },
    #[error("task group not found in batch")]
    TaskGroupNotFound,
    #[error("task group has {pending_count} pending tasks; {requested} requested")]
    NotEnoughPending { pending_count: i64, requested: i64 },
    /// The batch moved to another order between the unlocked read and the lock; the client
    /// may simply retry.
    #[error("batch changed while the request was running; retry the request")]
    BatchChangedConcurrently,
}
