//! The recorder command message (SPEC §7), documented by
//! `docs/schemas/recorder-command.schema.json`.

use chrono::{DateTime, Utc};
use keystone_store::outbox::OutboxRow;
use serde::{Deserialize, Serialize};

pub use keystone_domain::RecorderAction;

/// Only this kind exists today; consumers must ignore kinds they do not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    RecorderCommand,
}

/// One notification for one device. Fields this version does not know are ignored, so a
/// producer may add one without breaking older consumers (the schema's promise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderCommand {
    /// `order:{order_id}:task:{task_id}:{action}`: stable across retries, the dedup key.
    pub notification_id: String,
    pub kind: MessageKind,
    pub action: RecorderAction,
    pub device_id: String,
    /// Public task id (`task_…`).
    pub task_id: String,
    /// Public batch id (`batch_…`).
    pub batch_id: String,
    /// The order's database id, as a string.
    pub order_id: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// Why a message body is not a command this consumer can act on.
#[derive(Debug, thiserror::Error)]
pub enum MalformedMessage {
    #[error("message has no body")]
    NoBody,
    #[error("body is not a recorder command: {0}")]
    Json(#[from] serde_json::Error),
    #[error("device_id {0:?} is not a safe host label (letters, digits, '.', '_', '-')")]
    UnsafeDeviceId(String),
    #[error("{0} is empty")]
    Empty(&'static str),
    /// A well-formed message of a kind this consumer does not handle: acknowledged and
    /// logged, not retried and not dead-lettered.
    #[error("kind {0:?} is not one this consumer handles")]
    UnknownKind(String),
}

impl MalformedMessage {
    /// True for messages that can never succeed however often they are retried.
    pub fn is_poison(&self) -> bool {
        !matches!(self, Self::UnknownKind(_))
    }
}

impl RecorderCommand {
    /// Builds the message for an outbox row.
    ///
    /// # Errors
    /// An action other than `clear`/`cancel` in the row (the table's CHECK forbids it).
    pub fn from_row(row: &OutboxRow) -> Result<Self, serde_json::Error> {
        Ok(Self {
            notification_id: row.notification_id.clone(),
            kind: MessageKind::RecorderCommand,
            action: serde_json::from_value(serde_json::Value::String(row.action.clone()))?,
            device_id: row.device_id.clone(),
            task_id: row.task_id.clone(),
            batch_id: row.batch_id.clone(),
            order_id: row.order_id.to_string(),
            reason: row.reason.clone(),
            created_at: row.created_at,
        })
    }

    /// Parses and checks a message body. The device id ends up in a URL, so it must be a
    /// plain host label.
    ///
    /// # Errors
    /// [`MalformedMessage`] saying what is wrong.
    pub fn parse(body: Option<&str>) -> Result<Self, MalformedMessage> {
        let value: serde_json::Value = serde_json::from_str(body.ok_or(MalformedMessage::NoBody)?)?;
        match value.get("kind").and_then(serde_json::Value::as_str) {
            Some("recorder_command") | None => {}
            Some(other) => return Err(MalformedMessage::UnknownKind(other.to_owned())),
        }
        let command: Self = serde_json::from_value(value)?;
        for (name, value) in [
            ("notification_id", &command.notification_id),
            ("device_id", &command.device_id),
            ("task_id", &command.task_id),
        ] {
            if value.is_empty() {
                return Err(MalformedMessage::Empty(name));
            }
        }
        let safe = command
            .device_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !safe {
            return Err(MalformedMessage::UnsafeDeviceId(command.device_id));
        }
        Ok(command)
    }
}

/// The `MessageGroupId` of a device's commands (SPEC §7 "Group ids"): the device id when SQS
/// accepts it as one (1–128 ASCII letters, digits and punctuation), else `dev-` and the first
/// 32 hex digits of its SHA-256, so every device still gets one stable group of its own. The
/// message body always carries the real device id.
pub fn message_group_id(device_id: &str) -> std::borrow::Cow<'_, str> {
    let valid =
        (1..=128).contains(&device_id.len()) && device_id.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        return std::borrow::Cow::Borrowed(device_id);
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(device_id.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    std::borrow::Cow::Owned(format!("dev-{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(device_id: &str, action: &str) -> String {
        format!(
            r#"{{"notification_id":"order:4:task:task_1:{action}","kind":"recorder_command","action":"{action}","device_id":"{device_id}","task_id":"task_1","batch_id":"batch_1","order_id":"4","reason":"order_completed","created_at":"2026-11-23T21:00:00Z"}}"#
        )
    }

    #[test]
    fn well_formed_commands_parse() {
        let command = RecorderCommand::parse(Some(&body("robot-01.a_b", "cancel")));
        assert!(matches!(
            command,
            Ok(RecorderCommand {
                action: RecorderAction::Cancel,
                ..
            })
        ));
    }

    #[test]
    fn malformed_commands_say_why() {
        assert!(matches!(
            RecorderCommand::parse(None),
            Err(MalformedMessage::NoBody)
        ));
        assert!(matches!(
            RecorderCommand::parse(Some("{")),
            Err(MalformedMessage::Json(_))
        ));
        assert!(matches!(
            RecorderCommand::parse(Some(&body("robot", "reboot"))),
            Err(MalformedMessage::Json(_))
        ));
        assert!(matches!(
            RecorderCommand::parse(Some(&body("evil.com/x?", "clear"))),
            Err(MalformedMessage::UnsafeDeviceId(_))
        ));
        assert!(matches!(
            RecorderCommand::parse(Some(&body("", "clear"))),
            Err(MalformedMessage::Empty("device_id"))
        ));
        assert!(matches!(
            RecorderCommand::parse(Some(r#"{"notification_id":"n"}"#)),
            Err(MalformedMessage::Json(_))
        ));
    }

    #[test]
    fn new_fields_are_ignored_and_new_kinds_are_not_poison() {
        let with_extra = body("robot", "clear").replacen('{', r#"{"priority":"high","#, 1);
        assert!(RecorderCommand::parse(Some(&with_extra)).is_ok());
        let other_kind = body("robot", "clear").replace("recorder_command", "firmware_update");
        match RecorderCommand::parse(Some(&other_kind)) {
            Err(e @ MalformedMessage::UnknownKind(_)) => assert!(!e.is_poison()),
            other => panic!("{other:?}"),
        }
        assert!(
            RecorderCommand::parse(Some("[1]"))
                .err()
                .is_some_and(|e| e.is_poison())
        );
    }

    #[test]
    fn device_ids_sqs_accepts_are_their_own_group_and_others_get_a_stable_hash() {
        for valid in [
            "axon-arm-01",
            "robot_dc86",
            "a",
            "x!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
            &"d".repeat(128),
        ] {
            assert_eq!(message_group_id(valid), valid);
        }
        for refused in [
            "",
            "has space",
            "机器人-1",
            "tab\there",
            &"d".repeat(129),
            "caf\u{e9}",
        ] {
            let group = message_group_id(refused);
            assert!(
                group.starts_with("dev-") && group.len() == 36,
                "{refused:?} -> {group}"
            );
            assert!(group[4..].bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(message_group_id(refused), group, "stable");
        }
        assert_ne!(
            message_group_id("has space"),
            message_group_id("has  space")
        );
        // SHA-256("has space") begins 0f5b…: the group is its first 32 hex digits.
        assert_eq!(
            message_group_id("has space"),
            format!("dev-{}", &sha256_hex("has space")[..32])
        );
    }

    fn sha256_hex(text: &str) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
