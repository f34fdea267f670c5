//! A collector's token is only as good as the collector behind it (SPEC §4).

use chrono::{DateTime, Utc};

use crate::DomainError;

/// Who calls with a collector token: the collector it names and when it was issued (`iat`,
/// absent on some tokens Keystone issued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectorSession {
    pub collector_id: i64,
    pub issued_at: Option<i64>,
}

/// What the database says about a live collector, read with the request's first statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorStanding {
    pub status: String,
    pub tokens_revoked_at: Option<DateTime<Utc>>,
}

impl CollectorSession {
    /// Admits the session when its collector is live (`standing` is `None` for a deleted or
    /// unknown one), `active`, and the token was issued after the collector's last revocation.
    ///
    /// `iat` has whole seconds: a token whose `iat` is the revocation's own second cannot be
    /// told apart from one issued just before it, so it is refused too; a login right after a
    /// revocation issues its token from the next second on ([`first_valid_issue_second`]).
    ///
    /// # Errors
    /// [`DomainError::CollectorNotFound`] or [`DomainError::SessionEnded`].
    pub fn admit(&self, standing: Option<&CollectorStanding>) -> Result<(), DomainError> {
        let standing = standing.ok_or(DomainError::CollectorNotFound)?;
        if standing.status != ACTIVE {
            return Err(DomainError::SessionEnded);
        }
        match (standing.tokens_revoked_at, self.issued_at) {
            (None, _) => Ok(()),
            (Some(revoked), Some(iat)) if iat >= first_valid_issue_second(revoked) => Ok(()),
            (Some(_), _) => Err(DomainError::SessionEnded),
        }
    }
}

/// The status a collector needs to log in and to keep using its tokens.
pub const ACTIVE: &str = "active";

/// The first `iat` a token may carry to outlive a revocation at `revoked`.
pub fn first_valid_issue_second(revoked: DateTime<Utc>) -> i64 {
    revoked.timestamp().saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(status: &str, revoked: Option<i64>) -> CollectorStanding {
        CollectorStanding {
            status: status.to_owned(),
            tokens_revoked_at: revoked.map(|s| DateTime::from_timestamp(s, 500_000_000).unwrap()),
        }
    }

    fn session(issued_at: Option<i64>) -> CollectorSession {
        CollectorSession {
            collector_id: 7,
            issued_at,
        }
    }

    #[test]
    fn a_live_active_unrevoked_collector_is_admitted() {
        assert_eq!(session(None).admit(Some(&standing("active", None))), Ok(()));
    }

    #[test]
    fn deleted_inactive_and_revoked_sessions_are_refused() {
        assert_eq!(
            session(Some(1)).admit(None),
            Err(DomainError::CollectorNotFound)
        );
        for status in ["disabled", "suspended", "inactive", ""] {
            assert_eq!(
                session(Some(1)).admit(Some(&standing(status, None))),
                Err(DomainError::SessionEnded)
            );
        }
        let revoked = standing("active", Some(1000));
        assert_eq!(
            session(Some(999)).admit(Some(&revoked)),
            Err(DomainError::SessionEnded)
        );
        // The revocation's own second is ambiguous: refused.
        assert_eq!(
            session(Some(1000)).admit(Some(&revoked)),
            Err(DomainError::SessionEnded)
        );
        assert_eq!(
            session(None).admit(Some(&revoked)),
            Err(DomainError::SessionEnded)
        );
        assert_eq!(session(Some(1001)).admit(Some(&revoked)), Ok(()));
    }
}
