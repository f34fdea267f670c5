//! The transaction crate: every SQL statement that touches orders, batches, tasks or
//! workstations, and the only way to lock them.
//!
//! # Lock order
//! Rows are locked in one global order — **order → batches (ascending id) → tasks →
//! workstations (ascending id)** — so no two requests can deadlock. The [`locking`] module
//! makes any other order impossible to write: a batch lock is only reachable from an order
//! lock, task statements only from a batch lock, and locking workstations consumes the batch
//! scope. Idempotency-key rows (SPEC §6.1) are claimed before the order, outside the
//! hierarchy, by requests that hold nothing else.
//!
//! # One transaction per request
//! Services open one [`locking::UnitOfWork`], make every change of the request inside it and
//! commit once; returning early with an error drops the transaction, which rolls back.

pub mod complete_tasks;
pub mod config;
pub mod deliveries;
pub mod dispatch;
mod error;
mod finalize;
mod idempotency;
pub mod identity;
pub mod locking;
pub mod outbox;
mod task_edits;

pub use complete_tasks::{CompleteTaskGroup, complete_task_group};
pub use dispatch::{adjust_batch_tasks, create_batch, finalize_order};
pub use error::StoreError;
pub use finalize::Finalization;
pub use task_edits::{CreatedTaskView, GroupFigures};

/// The schema migrations, embedded at compile time from the repository's `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A response produced inside a transaction: its JSON body, and whether it is a stored
/// idempotent replay rather than a fresh effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
    pub replayed: bool,
    /// Outbox rows this request wrote (never set on a replay), to publish after commit.
    pub outbox_ids: Vec<i64>,
}
