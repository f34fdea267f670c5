//! Status vocabularies of SPEC §3, stored as TEXT in PostgreSQL.

use std::fmt;
use std::str::FromStr;

/// A status string the database holds but this code does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} status {value:?}")]
pub struct UnknownStatus {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// The text stored in the database and sent to clients.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownStatus { kind: $kind, value: value.to_owned() }),
                }
            }
        }
    };
}

status_enum!(
    /// Lifecycle of an order.
    OrderStatus, "order", {
        Created => "created",
        InProgress => "in_progress",
        Paused => "paused",
        Completed => "completed",
        Cancelled => "cancelled",
    }
);

status_enum!(
    /// How urgent an order is.
    OrderPriority, "priority", {
        Low => "low",
        Normal => "normal",
        High => "high",
        Urgent => "urgent",
    }
);

status_enum!(
    /// Lifecycle of a batch.
    BatchStatus, "batch", {
        Pending => "pending",
        Active => "active",
        Completed => "completed",
        Cancelled => "cancelled",
        Recalled => "recalled",
    }
);

status_enum!(
    /// Lifecycle of a task.
    TaskStatus, "task", {
        Pending => "pending",
        Ready => "ready",
        InProgress => "in_progress",
        Uploading => "uploading",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

status_enum!(
    /// What a device's recorder is told: `clear` a task that was ready, `cancel` the
    /// recording of a task that was in progress.
    RecorderAction, "recorder action", {
        Clear => "clear",
        Cancel => "cancel",
    }
);

status_enum!(
    /// Whether a collector may work: only `active` collectors log in and keep their tokens.
    CollectorStatus, "collector", {
        Active => "active",
        Inactive => "inactive",
        OnLeave => "on_leave",
    }
);

status_enum!(
    /// Operational state of a workstation.
    WorkstationStatus, "workstation", {
        Active => "active",
        Inactive => "inactive",
        Break => "break",
        Offline => "offline",
    }
);

impl BatchStatus {
    /// Only pending and active batches accept work (completions, edits, finalization).
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Active)
    }
}

impl TaskStatus {
    /// Completed, failed and cancelled tasks never change again.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Tasks that finalization cancels.
    pub const fn is_runnable(self) -> bool {
        matches!(self, Self::Pending | Self::Ready | Self::InProgress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_text() {
        for status in [
            TaskStatus::Pending,
            TaskStatus::Ready,
            TaskStatus::InProgress,
            TaskStatus::Uploading,
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Cancelled,
        ] {
            assert_eq!(status.as_str().parse::<TaskStatus>(), Ok(status));
        }
        assert_eq!(
            "in_progress".parse::<OrderStatus>(),
            Ok(OrderStatus::InProgress)
        );
        assert!("done".parse::<BatchStatus>().is_err());
    }

    #[test]
    fn terminal_and_runnable_task_statuses_follow_the_spec() {
        let terminal: Vec<_> = [
            TaskStatus::Pending,
            TaskStatus::Ready,
            TaskStatus::InProgress,
            TaskStatus::Uploading,
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Cancelled,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
        assert_eq!(
            terminal,
            [
                TaskStatus::Completed,
                TaskStatus::Failed,
                TaskStatus::Cancelled
            ]
        );
        assert!(TaskStatus::Ready.is_runnable());
        assert!(!TaskStatus::Uploading.is_runnable());
        assert!(BatchStatus::Active.is_open());
        assert!(!BatchStatus::Recalled.is_open());
    }
}
