//! The database handle every store function takes: the pool, and where passwords for new
//! connections come from.
//!
//! # Through a transaction-pooling proxy
//! RDS Proxy and PgBouncer hand a server connection to a client for one transaction at a time,
//! refuse startup `options`, and RDS Proxy **pins** a client to one server connection for good
//! once it sees session state change (`SET`, `set_config`, `PREPARE`, session advisory locks,
//! `LISTEN`, temporary tables, `DISCARD`). So the application sends none of it:
//! - the lock, statement and idle-in-transaction limits (SPEC §6) are the application role's
//!   defaults in its database ([`set_role_limits`], written by the migrations and by
//!   `db-migrate` from its configuration), so every server session starts with them and no
//!   request sets them;
//! - every statement runs inside an explicit transaction, so the parse and the execution of a
//!   statement reach the same server connection;
//! - with `statement-cache-capacity=0` in the URL (PgBouncer before 1.21, which does not keep
//!   protocol-level named statements), statements are sent unnamed: sqlx would otherwise still
//!   name them `sqlx_s_N` and never close them, and two clients' `sqlx_s_1` collide on one
//!   server connection. (RDS Proxy keeps protocol-level prepared statements without pinning.)
//!
//! The application's sessions say who they are (`application_name` [`APPLICATION_NAME`];
//! migrations [`MIGRATION_APPLICATION_NAME`]), which is how the test command's pinning check
//! finds every statement the application sent in PostgreSQL's statement log.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgPool, Postgres, SqlSafeStr, Transaction};

use crate::{Busy, StoreError};

/// Set once any handle in this process talks through a pooler that loses named statements.
static UNNAMED_STATEMENTS: AtomicBool = AtomicBool::new(false);

/// Whether statements may be prepared under a name and cached on the connection; `false` once a
/// handle was built with the statement cache off. Every query of this crate passes it to
/// `persistent`.
pub(crate) fn named_statements() -> bool {
    !UNNAMED_STATEMENTS.load(Ordering::Relaxed)
}

/// The least-privilege role the functions connect as in AWS (created by the migrations).
pub const APPLICATION_ROLE: &str = "keystone_app";

/// `application_name` of every session the functions open.
pub const APPLICATION_NAME: &str = "keystone";

/// `application_name` of the session that applies migrations: it runs DDL, takes an advisory
/// lock and deallocates what sqlx's migrator prepared, straight to the database (never through
/// the proxy), so the pinning check leaves it aside.
pub const MIGRATION_APPLICATION_NAME: &str = "keystone-migrate";

/// The limits of SPEC §6. Zero disables a limit (PostgreSQL's meaning). They are not sent with
/// requests: [`set_role_limits`] makes them the defaults every new session of the application
/// role starts with.
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
    /// The time budget of docs/deploy.md: a blocked request answers 503 well inside the
    /// Lambda timeout (25 s), itself inside API Gateway's 30 s.
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(4),
            statement_timeout: Duration::from_secs(8),
            idle_in_transaction_timeout: Duration::from_secs(10),
        }
    }
}

/// Makes `limits` the defaults of `role`'s new sessions in the current database
/// (`ALTER ROLE … IN DATABASE … SET`, through the migrations' `keystone_set_role_limits`).
/// Sessions already open keep what they started with; a pooling proxy's new server
/// connections pick the limits up.
///
/// # Errors
/// A role that does not exist, or a caller without the right to alter it (the master user and
/// superusers have it; the application role does not).
pub async fn set_role_limits(
    conn: &mut sqlx::PgConnection,
    role: &str,
    limits: TransactionLimits,
) -> Result<(), StoreError> {
    apply_limits(
        conn,
        "SELECT keystone_set_role_limits($1, $2, $3, $4)",
        role,
        limits,
    )
    .await
}

/// Gives the migrations' own session the limits [`set_role_limits`] just made `role`'s
/// defaults, when it runs as `role`. Role defaults reach only sessions that start later, and a
/// pooling proxy hands the server connection the migrations ran on to the role's next client
/// (`keystone-local` through PgBouncer does): without this, that request would run without
/// limits. Straight to the database (db-migrate in AWS) the session ends right after. A
/// migration session, not a request's: the pinning check leaves it aside.
pub(crate) async fn limit_this_session(
    conn: &mut sqlx::PgConnection,
    role: &str,
    limits: TransactionLimits,
) -> Result<(), StoreError> {
    apply_limits(
        conn,
        "SELECT set_config('lock_timeout', $2::text || 'ms', false), \
                set_config('statement_timeout', $3::text || 'ms', false), \
                set_config('idle_in_transaction_session_timeout', $4::text || 'ms', false) \
         WHERE current_user = $1",
        role,
        limits,
    )
    .await
}

/// Runs `sql` with the role (`$1`) and the lock, statement and idle-in-transaction limits in
/// milliseconds (`$2`–`$4`).
async fn apply_limits(
    conn: &mut sqlx::PgConnection,
    sql: &'static str,
    role: &str,
    limits: TransactionLimits,
) -> Result<(), StoreError> {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    sqlx::query(sql)
        .bind(role)
        .bind(ms(limits.lock_timeout))
        .bind(ms(limits.statement_timeout))
        .bind(ms(limits.idle_in_transaction_timeout))
        .persistent(false)
        .execute(conn)
        .await?;
    Ok(())
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

/// The handle: a pool and the password rotation. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: PgPool,
    rotation: Option<Arc<Rotation>>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("rotating_password", &self.rotation.is_some())
            .finish_non_exhaustive()
    }
}

impl From<PgPool> for Database {
    /// Named statements, a fixed password: a direct PostgreSQL connection.
    fn from(pool: PgPool) -> Self {
        Self::new(pool)
    }
}

impl Database {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            rotation: None,
        }
    }

    /// Sends statements unnamed, for poolers that do not keep named ones across transactions.
    /// Process-wide: once any handle needs it, every query of this crate is sent unnamed. Set it
    /// before the first query: a connection that already cached a named statement keeps
    /// executing it (sqlx looks in its cache first).
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
    /// [`Database::migration_connection`], which keep the password fresh.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection of its own for the migrations, opened with a fresh password and named
    /// [`MIGRATION_APPLICATION_NAME`]; close it when done.
    ///
    /// # Errors
    /// As [`Database::begin`].
    pub async fn migration_connection(&self) -> Result<sqlx::PgConnection, StoreError> {
        self.with_fresh_password(|| {
            let options = (*self.pool.connect_options())
                .clone()
                .application_name(MIGRATION_APPLICATION_NAME);
            async move { <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await }
        })
        .await
    }

    /// Begins a transaction, in one round trip.
    ///
    /// # Errors
    /// No connection within the pool's acquire timeout, a password that cannot be had, or a
    /// database failure.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.begin_in("BEGIN").await
    }

    /// Begins a read-only transaction that sees one snapshot throughout (REPEATABLE READ), for
    /// views assembled from several statements.
    ///
    /// # Errors
    /// As [`Database::begin`].
    pub async fn begin_read_only_snapshot(
        &self,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.begin_in("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
    }

    /// Acquires a connection and begins, with no ping first (the pool does not test idle
    /// connections: `BEGIN` is the test, and saves a round trip per request). A connection
    /// that died while idle (a proxy's idle timeout, a failover, a frozen Lambda container
    /// thawed hours later) fails its `BEGIN` having done nothing, so the next one is tried, up
    /// to one more than the pool holds.
    async fn begin_in(
        &self,
        statement: &'static str,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        let attempts = self.pool.options().get_max_connections().saturating_add(1);
        let mut attempt = 1;
        loop {
            // Boxed: sqlx's acquire future nested in the password retry is deep enough that
            // every caller's future hits rustc's query depth limit in release builds.
            let conn = Box::pin(self.with_fresh_password(|| self.pool.acquire())).await?;
            match Transaction::begin(conn, Some(statement.into_sql_str())).await {
                Ok(tx) => return Ok(tx),
                Err(e) => {
                    let e = StoreError::from(e);
                    if attempt >= attempts || e.busy() != Some(Busy::ConnectionLost) {
                        return Err(e);
                    }
                    tracing::info!(error = %e, attempt, "idle connection was lost; trying another");
                    attempt += 1;
                }
            }
        }
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
