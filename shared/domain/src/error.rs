//! Every way a request can break a rule of the product, with the figures the client needs.
//!
//! The `Display` text is the client-facing message of SPEC §5; the HTTP layer picks the
//! status code and turns the fields into the extra members of the error body.

use crate::status::{BatchStatus, CollectorStatus, OrderStatus, WorkstationStatus};
use crate::workflow::OrderControl;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid batch id")]
    InvalidBatchId,
    #[error("invalid request body")]
    InvalidRequestBody { detail: String },
    #[error("name must be at most {max} characters")]
    OrderNameTooLong { max: usize },
    #[error("order name already exists")]
    OrderNameTaken,
    /// A PATCH body that names no field it may change; `fields` lists those it may.
    #[error("the body changes nothing: send {fields}")]
    NothingToUpdate { fields: &'static str },
    /// A PATCH body asking for a status move that only a control endpoint makes; `rule` says
    /// which.
    #[error("{rule}")]
    StatusNotPatchable { rule: &'static str },
    #[error("{field} cannot be changed")]
    ImmutableField { field: &'static str },
    #[error("unknown organization")]
    UnknownOrganization,
    #[error("unknown scene")]
    UnknownScene,
    #[error("order has batches")]
    OrderHasBatches { batch_count: i64 },
    #[error("invalid {parameter}: {detail}")]
    InvalidListParameter {
        parameter: &'static str,
        detail: String,
    },
    /// PostgreSQL stores no NUL character in text or JSON, so a string that holds one is
    /// refused up front, naming where it sits (`metadata.note`, `task_groups[0]`).
    #[error("a text contains a NUL character, which cannot be stored")]
    UnstorableText { field: String },
    /// The database refused a value of the request as data (SQLSTATE class 22) that the
    /// checks before it let through: the request is at fault, not the server.
    #[error("a value in the request cannot be stored")]
    UnstorableValue,
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
    /// The collector is not `active`, or its tokens were revoked after this one was issued.
    #[error("session ended")]
    SessionEnded,
    #[error("workstation not assigned")]
    WorkstationNotAssigned,
    /// Break and end-break need a collector at work: an offline workstation comes back with a
    /// login.
    #[error("workstation is offline; log in to bring it back")]
    WorkstationOffline,
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
    #[error("invalid order id")]
    InvalidOrderId,
    #[error("invalid data collector id")]
    InvalidCollectorId,
    /// An admin's lookup of a collector that does not exist (a collector's own token whose
    /// collector is gone answers [`DomainError::CollectorNotFound`], 401).
    #[error("data collector not found")]
    DataCollectorNotFound,
    #[error("operator id already exists")]
    OperatorIdTaken,
    #[error("data collector has a workstation; unbind it first")]
    CollectorHasStation { workstation_id: String },
    #[error("invalid station id")]
    InvalidStationId,
    #[error("station not found")]
    StationNotFound,
    #[error("unknown robot")]
    UnknownRobot,
    #[error("unknown data collector")]
    UnknownCollector,
    #[error("data collector is {collector_status}; only an active collector can be bound")]
    CollectorNotActive { collector_status: CollectorStatus },
    /// A station belongs to its collector's organization; a collector carried over from
    /// Keystone without one cannot be bound.
    #[error("data collector has no organization")]
    CollectorWithoutOrganization,
    #[error("data collector belongs to another organization than the station")]
    CollectorOrganizationMismatch,
    #[error("robot is already bound to a station")]
    RobotAlreadyBound { workstation_id: String },
    #[error("data collector is already bound to a station")]
    CollectorAlreadyBound { workstation_id: String },
    /// Rebinding or unbinding would strand the binding's pending and active batches.
    #[error("station has open batches")]
    StationHasOpenBatches { open_batch_count: i64 },
    /// The binding was rebound (`superseded_by` names the current one) or unbound (null).
    #[error("station binding is no longer current")]
    StationSuperseded { superseded_by: Option<String> },
    /// `active` and `inactive` follow the station's batches; an admin asks for one to bring the
    /// station back from a break or offline.
    #[error("status {requested} cannot be set: the station's batches make it {derived_status}")]
    WorkstationStatusDerived {
        requested: WorkstationStatus,
        derived_status: WorkstationStatus,
    },
    #[error("password must be at least {min} characters")]
    PasswordTooShort { min: usize },
    #[error("password must be at most {max} bytes")]
    PasswordTooLong { max: usize },
    #[error("{field} must be at most {max} characters")]
    TextTooLong { field: &'static str, max: usize },
    #[error("invalid email")]
    InvalidEmail,
    #[error("order not found")]
    OrderNotFound,
    #[error("{0} is required")]
    MissingField(&'static str),
    #[error("task_groups must not be empty")]
    TaskGroupsEmpty,
    #[error("task_groups[{index}] needs a positive sop_id and subscene_id")]
    InvalidTaskGroupAt { index: usize },
    #[error("task_groups[{index}].quantity must be >= {min}")]
    InvalidQuantityAt { index: usize, min: i64 },
    #[error(
        "task_groups[{first}] and task_groups[{second}] name the same group \
         (sop_id {sop_id}, subscene_id {subscene_id})"
    )]
    DuplicateTaskGroup {
        first: usize,
        second: usize,
        sop_id: i64,
        subscene_id: i64,
    },
    #[error("a batch may be created with at most {max} tasks; {requested} requested")]
    TooManyTasks { requested: i64, max: i64 },
    /// `requested` saturates at `i64::MAX`: quantities that would overflow when added up are
    /// reported as the largest number, never wrapped.
    #[error("one request may add at most {max} tasks to a batch; {requested} requested")]
    TooManyTasksAdded { requested: i64, max: i64 },
    #[error("unknown order")]
    UnknownOrder,
    #[error("unknown workstation")]
    UnknownWorkstation,
    #[error("unknown sop_id {sop_id}")]
    UnknownSop { sop_id: i64 },
    #[error("unknown subscene_id {subscene_id}")]
    UnknownSubscene { subscene_id: i64 },
    #[error("workstation belongs to another organization than the order")]
    WorkstationOrganizationMismatch,
    #[error("order is {order_status}; cannot create a batch")]
    OrderClosedForBatches { order_status: OrderStatus },
    #[error("batch is {current_status}; only pending or active batches can be cancelled")]
    BatchNotCancellable { current_status: BatchStatus },
    #[error("batch is {current_status}; only active or completed batches can be recalled")]
    BatchNotRecallable { current_status: BatchStatus },
    #[error(
        "batch is {current_status} with {completed_count} completed tasks; only a pending or \
         cancelled batch without completed tasks can be deleted"
    )]
    BatchNotDeletable {
        current_status: BatchStatus,
        completed_count: i64,
    },
    #[error("batch is {current_status}; only pending or active batches can be edited")]
    BatchNotEditable { current_status: BatchStatus },
    #[error(
        "task group (sop_id {sop_id}, subscene_id {subscene_id}) has {locked_count} locked \
         tasks; cannot go down to {requested}"
    )]
    BelowLockedTasks {
        sop_id: i64,
        subscene_id: i64,
        locked_count: i64,
        requested: i64,
    },
    #[error("order is completed; cannot add tasks to batch")]
    OrderCompletedNoInsert,
    #[error("order is cancelled; cannot add tasks to batch")]
    OrderCancelledNoInsert,
    #[error("batch task count would exceed the order's target")]
    BatchQuotaExceeded {
        target_count: i64,
        order_task_count: i64,
        current_batch_task_count: i64,
        max_batch_target: i64,
        requested_batch_task_count: i64,
        remaining_assignable: i64,
    },
    #[error("requested tasks exceed the order's remaining assignable count")]
    OrderQuotaExceeded {
        target_count: i64,
        task_count: i64,
        remaining: i64,
        requested: i64,
    },
    #[error("account and password are required")]
    MissingCredentials,
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The account or the address has failed too often; try again after `retry_after_secs`.
    #[error("too many login attempts")]
    TooManyLoginAttempts { retry_after_secs: u32 },
    /// The batch moved to another order between the unlocked read and the lock; the client
    /// may simply retry.
    #[error("batch changed while the request was running; retry the request")]
    BatchChangedConcurrently,
    #[error("task group has {reopenable_count} reopenable tasks; {requested} requested")]
    NotEnoughReopenable {
        reopenable_count: i64,
        requested: i64,
    },
    /// Finalization cancelled the order's other tasks and told devices: it cannot be undone.
    #[error("order is {order_status}; its completed tasks cannot be reopened")]
    OrderClosedForReopen { order_status: OrderStatus },
    #[error("batch is {current_status}; its tasks cannot be reopened")]
    BatchNotReopenable { current_status: BatchStatus },
    #[error("order is {current_status}; cannot {control}")]
    OrderControlNotAllowed {
        control: OrderControl,
        current_status: OrderStatus,
    },
    #[error("target_count must be between 1 and {max}")]
    InvalidTargetCount { max: i64 },
    #[error("target_count {requested} is below the order's {completed_count} completed tasks")]
    TargetBelowCompleted {
        completed_count: i64,
        requested: i64,
    },
}

impl DomainError {
    /// The stable, machine-readable name of the rule (SPEC §5: `code` in every error body),
    /// for clients to branch on and translate; the English message may change, this may not.
    /// No wildcard arm: a new rule must be given its code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidBatchId => "invalid_batch_id",
            Self::InvalidRequestBody { .. } => "invalid_request_body",
            Self::InvalidListParameter { .. } => "invalid_list_parameter",
            Self::OrderNameTooLong { .. } => "order_name_too_long",
            Self::OrderNameTaken => "order_name_taken",
            Self::NothingToUpdate { .. } => "nothing_to_update",
            Self::StatusNotPatchable { .. } => "status_not_patchable",
            Self::ImmutableField { .. } => "immutable_field",
            Self::UnknownOrganization => "unknown_organization",
            Self::UnknownScene => "unknown_scene",
            Self::OrderHasBatches { .. } => "order_has_batches",
            Self::UnstorableText { .. } => "unstorable_text",
            Self::UnstorableValue => "unstorable_value",
            Self::QuantityTooSmall => "quantity_too_small",
            Self::InvalidTaskGroup => "invalid_task_group",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::CollectorNotFound => "collector_not_found",
            Self::SessionEnded => "session_ended",
            Self::WorkstationNotAssigned => "workstation_not_assigned",
            Self::WorkstationOffline => "workstation_offline",
            Self::BatchNotFound => "batch_not_found",
            Self::BatchNotOnWorkstation => "batch_not_on_workstation",
            Self::RequiresAxon => "requires_axon",
            Self::OrderCancelled { .. } => "order_cancelled",
            Self::BatchNotOpen { .. } => "batch_not_open",
            Self::QuantityExceedsBatch { .. } => "quantity_exceeds_batch",
            Self::TaskGroupNotFound => "task_group_not_found",
            Self::NotEnoughPending { .. } => "not_enough_pending",
            Self::InvalidOrderId => "invalid_order_id",
            Self::InvalidCollectorId => "invalid_data_collector_id",
            Self::DataCollectorNotFound => "data_collector_not_found",
            Self::OperatorIdTaken => "operator_id_taken",
            Self::CollectorHasStation { .. } => "data_collector_has_station",
            Self::InvalidStationId => "invalid_station_id",
            Self::StationNotFound => "station_not_found",
            Self::UnknownRobot => "unknown_robot",
            Self::UnknownCollector => "unknown_data_collector",
            Self::CollectorNotActive { .. } => "data_collector_not_active",
            Self::CollectorWithoutOrganization => "data_collector_without_organization",
            Self::CollectorOrganizationMismatch => "data_collector_organization_mismatch",
            Self::RobotAlreadyBound { .. } => "robot_already_bound",
            Self::CollectorAlreadyBound { .. } => "data_collector_already_bound",
            Self::StationHasOpenBatches { .. } => "station_has_open_batches",
            Self::StationSuperseded { .. } => "station_superseded",
            Self::WorkstationStatusDerived { .. } => "workstation_status_derived",
            Self::PasswordTooShort { .. } => "password_too_short",
            Self::PasswordTooLong { .. } => "password_too_long",
            Self::TextTooLong { .. } => "text_too_long",
            Self::InvalidEmail => "invalid_email",
            Self::OrderNotFound => "order_not_found",
            Self::MissingField(_) => "missing_field",
            Self::TaskGroupsEmpty => "task_groups_empty",
            Self::InvalidTaskGroupAt { .. } => "invalid_task_group_entry",
            Self::InvalidQuantityAt { .. } => "invalid_task_group_quantity",
            Self::DuplicateTaskGroup { .. } => "duplicate_task_group",
            Self::TooManyTasks { .. } => "too_many_tasks",
            Self::TooManyTasksAdded { .. } => "too_many_tasks_added",
            Self::UnknownOrder => "unknown_order",
            Self::UnknownWorkstation => "unknown_workstation",
            Self::UnknownSop { .. } => "unknown_sop",
            Self::UnknownSubscene { .. } => "unknown_subscene",
            Self::WorkstationOrganizationMismatch => "workstation_organization_mismatch",
            Self::OrderClosedForBatches { .. } => "order_closed_for_batches",
            Self::BatchNotCancellable { .. } => "batch_not_cancellable",
            Self::BatchNotEditable { .. } => "batch_not_editable",
            Self::BatchNotRecallable { .. } => "batch_not_recallable",
            Self::BatchNotDeletable { .. } => "batch_not_deletable",
            Self::BelowLockedTasks { .. } => "below_locked_tasks",
            Self::OrderCompletedNoInsert => "order_completed_cannot_add_tasks",
            Self::OrderCancelledNoInsert => "order_cancelled_cannot_add_tasks",
            Self::BatchQuotaExceeded { .. } => "batch_quota_exceeded",
            Self::OrderQuotaExceeded { .. } => "order_quota_exceeded",
            Self::MissingCredentials => "missing_credentials",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TooManyLoginAttempts { .. } => "too_many_login_attempts",
            Self::BatchChangedConcurrently => "batch_changed_concurrently",
            Self::NotEnoughReopenable { .. } => "not_enough_reopenable",
            Self::OrderClosedForReopen { .. } => "order_closed_for_reopen",
            Self::BatchNotReopenable { .. } => "batch_not_reopenable",
            Self::OrderControlNotAllowed { .. } => "order_control_not_allowed",
            Self::InvalidTargetCount { .. } => "invalid_target_count",
            Self::TargetBelowCompleted { .. } => "target_below_completed",
        }
    }
}
