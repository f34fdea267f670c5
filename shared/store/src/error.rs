use keystone_domain::DomainError;

/// Errors of the transaction crate.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request broke a product rule; nothing was changed.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The migrations and the database's migration history disagree, or one failed.
    #[error("{0}")]
    Migration(String),
    /// Data in the database contradicts what the code relies on (an unknown status, a lock
    /// that did not cover a row it should have). Always a bug or manual tampering.
    #[error("invariant violated: {0}")]
    Invariant(String),
    #[error("could not serialize the response")]
    Serialize(#[from] serde_json::Error),
    /// The password (or IAM token) for a new connection could not be had.
    #[error("cannot get database credentials: {0}")]
    Credentials(String),
}

/// Why the database turned a request away without applying anything: each is worth a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// A row lock was not granted within `lock_timeout`.
    LockWait,
    /// A statement ran past `statement_timeout`.
    Statement,
    /// The server ended the transaction for idling past `idle_in_transaction_session_timeout`.
    IdleTransaction,
    /// Deadlock or serialization failure.
    Conflict,
    /// No pooled connection within the acquire timeout.
    Pool,
    /// The database connection broke mid-request (a failover, a proxy or server restart, an
    /// operator ending the session). Before the commit nothing was applied; a break during the
    /// commit itself leaves it unknown, which is what `Idempotency-Key` retries are for.
    ConnectionLost,
}

impl StoreError {
    /// True when the database refused for contention (lock timeout, deadlock, serialization
    /// failure): the request changed nothing and can be retried as is.
    pub fn is_contention(&self) -> bool {
        self.busy().is_some()
    }

    /// True when the database refused a value as data (SQLSTATE class 22: bad encoding, out
    /// of range, invalid text representation): the request's fault, never the server's.
    pub fn is_data_exception(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(db))
            if db.code().is_some_and(|code| code.starts_with("22")))
    }

    /// Which limit or conflict turned the request away, when one did (SPEC §6: 503 with
    /// `Retry-After`, nothing applied).
    pub fn busy(&self) -> Option<Busy> {
        match self {
            Self::Database(sqlx::Error::PoolTimedOut) => Some(Busy::Pool),
            Self::Database(sqlx::Error::Io(_) | sqlx::Error::PoolClosed) => {
                Some(Busy::ConnectionLost)
            }
            Self::Database(sqlx::Error::Database(db)) => match db.code()?.as_ref() {
                "55P03" => Some(Busy::LockWait),
                "57014" => Some(Busy::Statement),
                "25P03" => Some(Busy::IdleTransaction),
                "40P01" | "40001" => Some(Busy::Conflict),
                // admin_shutdown, crash_shutdown, cannot_connect_now, idle_session_timeout;
                // class 08: connection exceptions.
                "57P01" | "57P02" | "57P03" | "57P05" => Some(Busy::ConnectionLost),
                code if code.starts_with("08") => Some(Busy::ConnectionLost),
                _ => None,
            },
            _ => None,
        }
    }
}

impl From<keystone_domain::UnknownStatus> for StoreError {
    fn from(err: keystone_domain::UnknownStatus) -> Self {
        Self::Invariant(err.to_string())
    }
}
