use keystone_domain::DomainError;

/// Errors of the transaction crate.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request broke a product rule; nothing was changed.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Data in the database contradicts what the code relies on (an unknown status, a lock
    /// that did not cover a row it should have). Always a bug or manual tampering.
    #[error("invariant violated: {0}")]
    Invariant(String),
    #[error("could not serialize the response")]
    Serialize(#[from] serde_json::Error),
}

impl StoreError {
    /// True when the database refused for contention (lock timeout, deadlock, serialization
    /// failure): the request changed nothing and can be retried as is.
    pub fn is_contention(&self) -> bool {
        const CONTENTION: [&str; 3] = ["55P03", "40P01", "40001"];
        match self {
            Self::Database(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|code| CONTENTION.contains(&code.as_ref())),
            _ => false,
        }
    }
}

impl From<keystone_domain::UnknownStatus> for StoreError {
    fn from(err: keystone_domain::UnknownStatus) -> Self {
        Self::Invariant(err.to_string())
    }
}
