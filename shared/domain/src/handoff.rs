//! The handoff payload of SPEC §8: what a collector copies from the phone into an external
//! device's own program for one task group.

use serde::Serialize;

/// What a collector copies from the phone into an external device's program for one task
/// group, sent as one line of compact JSON: these keys in this order, absent values as empty
/// strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HandoffPayload {
    pub sop_slug: String,
    pub sop_version: String,
    pub scene_name: String,
    pub subscene_name: String,
    pub collector_name: String,
    pub collector_operator_id: String,
    pub device_id: String,
    /// The robot type's name.
    pub device_type: String,
}

impl HandoffPayload {
    /// The single-line compact JSON object: fixed key order, no whitespace, non-ASCII text
    /// as UTF-8 (serde_json escapes only quotes, backslashes and control characters).
    pub fn to_json_line(&self) -> String {
        // Serializing a struct of strings cannot fail; fall back to an empty object anyway
        // rather than panic.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// How a workstation's robot records: through Axon, or an external device's own program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Workflow {
    Axon,
    ExternalDevice,
}

impl Workflow {
    pub const fn from_requires_axon(requires_axon: bool) -> Self {
        if requires_axon {
            Self::Axon
        } else {
            Self::ExternalDevice
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_is_reproduced_byte_for_byte() {
        let payload = HandoffPayload {
            sop_slug: "move_bottle".into(),
            sop_version: "v1".into(),
            scene_name: "厨房".into(),
            subscene_name: "台面".into(),
            collector_name: "张三".into(),
            collector_operator_id: "DC001".into(),
            device_id: "robot_dc86".into(),
            device_type: "SynGloves".into(),
        };
        assert_eq!(
            payload.to_json_line(),
            r#"{"sop_slug":"move_bottle","sop_version":"v1","scene_name":"厨房","subscene_name":"台面","collector_name":"张三","collector_operator_id":"DC001","device_id":"robot_dc86","device_type":"SynGloves"}"#
        );
    }

    #[test]
    fn missing_values_are_empty_strings_and_quotes_stay_valid_json() {
        let payload = HandoffPayload {
            scene_name: "a \"b\"".into(),
            ..HandoffPayload::default()
        };
        let line = payload.to_json_line();
        assert_eq!(
            line,
            r#"{"sop_slug":"","sop_version":"","scene_name":"a \"b\"","subscene_name":"","collector_name":"","collector_operator_id":"","device_id":"","device_type":""}"#
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn workflow_follows_requires_axon() {
        assert_eq!(Workflow::from_requires_axon(true), Workflow::Axon);
        assert_eq!(
            serde_json::to_string(&Workflow::from_requires_axon(false))
                .ok()
                .as_deref(),
            Some("\"external_device\"")
        );
    }
}
