//! Public ids in Keystone's shape: `{prefix}_YYYYMMDD_HHMMSS_mmm_SS_xxxxxxxx`.
//!
//! `mmm` is the millisecond, `SS` a two-digit per-process sequence so ids minted in the same
//! millisecond still differ in order, and `xxxxxxxx` eight random hex digits so separate
//! processes (Lambda containers) do not collide.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use rand::Rng;

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Kinds of public id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicIdKind {
    Batch,
    Task,
}

impl PublicIdKind {
    const fn prefix(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Task => "task",
        }
    }
}

/// Mints a fresh public id for `kind` at `now`.
pub fn new_public_id(kind: PublicIdKind, now: DateTime<Utc>) -> String {
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) % 100;
    let random: u32 = rand::rng().random();
    format!(
        "{}_{}_{:02}_{:08x}",
        kind.prefix(),
        now.format("%Y%m%d_%H%M%S_%3f"),
        sequence,
        random
    )
}

/// Mints `count` fresh ids at once, for set-based inserts.
pub fn new_public_ids(kind: PublicIdKind, now: DateTime<Utc>, count: usize) -> Vec<String> {
    (0..count).map(|_| new_public_id(kind, now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn public_ids_have_keystones_shape() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 21, 5, 9)
            .single()
            .map(|t| t + chrono::Duration::milliseconds(42));
        let Some(now) = now else {
            unreachable!("valid timestamp")
        };
        let id = new_public_id(PublicIdKind::Task, now);
        let parts: Vec<&str> = id.split('_').collect();
        assert_eq!(parts.len(), 6, "{id}");
        assert_eq!(&parts[..4], ["task", "20261123", "210509", "042"]);
        assert_eq!(parts[4].len(), 2);
        assert!(parts[4].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(parts[5].len(), 8);
        assert!(parts[5].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn ids_minted_together_are_distinct() {
        let ids = new_public_ids(PublicIdKind::Batch, Utc::now(), 500);
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(ids.iter().all(|id| id.starts_with("batch_")));
    }
}
