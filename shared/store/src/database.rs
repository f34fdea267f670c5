//! The database handle every store function takes: the pool, the limits every transaction runs
//! under, and where passwords for new connections come from.
//!
//! # Through a transaction-pooling proxy
//! RDS Proxy and PgBouncer hand a server connection to a client for one transaction at a time,
//! and refuse startup `options`. So nothing here relies on session state:
//! - the lock, statement and idle-in-transaction limits (SPEC §6) are set with `set_config(…,
//!   true)` (`SET LOCAL`) in the statement that begins each transaction, and vanish at its end;
//! - every statement runs inside an explicit transaction, so the parse and the execution of a
//!   statement reach the same server connection;
//! - with `statement-cache-capacity=0` in the URL (PgBouncer before 1.21, which does not keep
//!   protocol-level named statements), statements are sent unnamed: sqlx would otherwise still
//!   name them `sqlx_s_N` and never close them, and two clients' `sqlx_s_1` collide on one
//!   server connection.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};

use crate::StoreError;

/// Set once any handle in this process talks through a pooler that loses named statements.
static UNNAMED_STATEMENTS: AtomicBool = AtomicBool::new(false);

/// Whether statements may be prepared under a name and cached on the connection; `false` once a
/// handle was built with the statement cache off. Every query of this crate passes it to
/// `persistent`.
pub(crate) fn named_statements() -> bool {
    !UNNAMED_STATEMENTS.load(Ordering::Relaxed)
}

/// The limits of SPEC §6, per transaction. Zero disables a limit (PostgreSQL's meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionLimits {
    /// Longest wait for one row lock (`lock_timeout`, SQLSTATE 55P03 past it).
    pub lock_timeout: Duration,
    /// Longest run of one statement, lock waits included (`statement_timeout`, 57014).
    pub statement_timeout: Duration,
    /// Longest pause between statements inside a transaction before the server ends the
    /// session (`idle_in_transaction_session_timeout`), so a stalled function cannot hold locks.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for TransactionLimits {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(15),
            idle_in_transaction_timeout: Duration::from_secs(20),
        }
    }
}

impl TransactionLimits {
    /// The one simple-protocol round trip that begins a transaction (`BEGIN {mode}`) with
    /// these limits.
    fn begin_statement(&self, mode: &str) -> String {
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        format!(
            "BEGIN{mode}; SELECT set_config('lock_timeout', '{}', true), \
             set_config('statement_timeout', '{}', true), \
             set_config('idle_in_transaction_session_timeout', '{}', true)",
            ms(self.lock_timeout),
            ms(self.statement_timeout),
            ms(self.idle_in_transaction_timeout),
        )
    }
}

/// Where the password of a new connection comes from when it rotates: an RDS IAM token, or a
/// secret re-read from its store.
pub trait PasswordSource: Send + Sync + fmt::Debug {
    /// A password valid for connections opened from now until the next refresh.
    fn password(&self) -> Pin<Box<dyn Future<Output = Result<SecretString, String>> + Send + '_>>;
}

/// A [`PasswordSource`] and how often to ask it again.
#[derive(Debug)]
struct Rotation {
    source: Arc<dyn PasswordSource>,
    every: Duration,
    refreshed_at: Mutex<Option<Instant>>,
}

/// The handle: a pool, the limits, and the password rotation. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: PgPool,
    limits: TransactionLimits,
    /// The `BEGIN …` round trips, built once from the limits.
    begin_statement: Arc<str>,
    begin_snapshot_statement: Arc<str>,
    rotation: Option<Arc<Rotation>>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("limits", &self.limits)
            .field("rotating_password", &self.rotation.is_some())
            .finish_non_exhaustive()
    }
}

impl From<PgPool> for Database {
    /// Default limits, named statements, a fixed password: a direct PostgreSQL connection.
    fn from(pool: PgPool) -> Self {
        Self::new(pool, TransactionLimits::default())
    }
}

impl Database {
    pub fn new(pool: PgPool, limits: TransactionLimits) -> Self {
        Self {
            pool,
            begin_statement: limits.begin_statement("").into(),
            begin_snapshot_statement: limits
                .begin_statement(" ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .into(),
            limits,
            rotation: None,
        }
    }

    /// Sends statements unnamed, for poolers that do not keep named ones across transactions.
    /// Process-wide: once any handle needs it, every query of this crate is sent unnamed.
    #[must_use]
    pub fn with_unnamed_statements(self) -> Self {
        UNNAMED_STATEMENTS.store(true, Ordering::Relaxed);
        self
    }

    /// Takes the password of new connections from `source`, asking it again when the last
    /// answer is older than `every` (keep it below the password's lifetime: 15 minutes for an
    /// IAM token). Open connections stay open: PostgreSQL checks passwords only at connect.
    #[must_use]
    pub fn with_rotating_password(
        mut self,
        source: Arc<dyn PasswordSource>,
        every: Duration,
    ) -> Self {
        self.rotation = Some(Arc::new(Rotation {
            source,
            every,
            refreshed_at: Mutex::new(None),
        }));
        self
    }

    /// The pool, for closing it and for tests. Store code goes through [`Database::begin`] or
    /// [`Database::dedicated_connection`], which keep the password fresh.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection taken out of the pool for work that needs one session to itself
    /// (migrations), opened with a fresh password; it is closed, not returned, when dropped.
    ///
    /// # Errors
    /// As [`Database::begin`].
    pub async fn dedicated_connection(&self) -> Result<sqlx::PgConnection, StoreError> {
        self.with_fresh_password(|| async { Ok(self.pool.acquire().await?.detach()) })
            .await
    }

    pub fn limits(&self) -> TransactionLimits {
        self.limits
    }

    /// Begins a transaction under the limits, in one round trip.
    ///
    /// # Errors
    /// No connection within the pool's acquire timeout, a password that cannot be had, or a
    /// database failure.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.begin_in(&self.begin_statement).await
    }

    /// Begins a read-only transaction that sees one snapshot throughout (REPEATABLE READ), for
    /// views assembled from several statements.
    ///
    /// # Errors
    /// As [`Database::begin`].
    pub async fn begin_read_only_snapshot(
        &self,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.begin_in(&self.begin_snapshot_statement).await
    }

    async fn begin_in(
        &self,
        statement: &str,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        // Boxed: sqlx's begin future nested in the retry is deep enough that every caller's
        // future hits rustc's query depth limit in release builds.
        Box::pin(
            self.with_fresh_password(|| self.pool.begin_with(AssertSqlSafe(statement.to_owned()))),
        )
        .await
    }

    /// Runs `connect` (which may open a connection) after refreshing a due password. When the
    /// password rotated sooner than the refresh interval and the login is refused, asks the
    /// source again and retries once, so the request does not fail for it.
    async fn with_fresh_password<T, F, Fut>(&self, connect: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.refresh_password(false).await?;
        match connect().await {
            Err(e) if self.rotation.is_some() && login_refused(&e) => {
                tracing::info!("database login refused; re-reading the password");
                self.refresh_password(true).await?;
                Ok(connect().await?)
            }
            other => Ok(other?),
        }
    }

    /// Puts a fresh password into the pool's connect options when the last one is due (or
    /// always, with `force`).
    async fn refresh_password(&self, force: bool) -> Result<(), StoreError> {
        let Some(rotation) = &self.rotation else {
            return Ok(());
        };
        let due = force
            || rotation
                .refreshed_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none_or(|at| at.elapsed() >= rotation.every);
        if !due {
            return Ok(());
        }
        let password = rotation
            .source
            .password()
            .await
            .map_err(StoreError::Credentials)?;
        let options = (*self.pool.connect_options())
            .clone()
            .password(password.expose_secret());
        self.pool.set_connect_options(options);
        *rotation
            .refreshed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        Ok(())
    }
}

/// A login the server refused for its password or authorization (SQLSTATE class 28).
fn login_refused(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.code().is_some_and(|code| code == "28P01" || code == "28000"))
}

/// A fixed password behind the [`PasswordSource`] interface, for tests and local runs.
#[derive(Debug, Clone)]
pub struct SharedPassword(Arc<Mutex<SecretString>>);

impl SharedPassword {
    pub fn new(password: &str) -> Self {
        Self(Arc::new(Mutex::new(SecretString::from(password))))
    }

    /// Replaces the password handed out from now on.
    pub fn set(&self, password: &str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = SecretString::from(password);
    }
}

impl PasswordSource for SharedPassword {
    fn password(&self) -> Pin<Box<dyn Future<Output = Result<SecretString, String>> + Send + '_>> {
        let password = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Box::pin(async move { Ok(password) })
    }
}
