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

pub mod batch_controls;
pub mod batch_lists;
pub mod collectors;
pub mod complete_tasks;
pub mod config;
pub mod database;
pub mod deliveries;
pub mod dispatch;
mod error;
mod finalize;
mod idempotency;
pub mod identity;
pub mod locking;
pub mod login_throttle;
pub mod notifications;
pub mod order_controls;
pub mod orders;
pub mod outbox;
pub mod progress;
pub mod reference;
pub mod reopen;
pub mod sessions;
pub mod stations;
mod task_edits;
mod telemetry;
pub mod trace_context;

pub use complete_tasks::{CompleteTaskGroup, complete_task_group};
pub use database::{
    APPLICATION_NAME, APPLICATION_ROLE, Database, MIGRATION_APPLICATION_NAME, PasswordSource,
    SharedPassword, TransactionLimits, set_role_limits,
};
pub use dispatch::{adjust_batch_tasks, create_batch, finalize_order};
pub use error::{Busy, StoreError};
pub use finalize::Finalization;
pub use task_edits::{CreatedTaskView, GroupFigures};

/// The schema migrations, embedded at compile time from the repository's `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The same migrations without sqlx's session-level advisory lock, which a transaction-pooling
/// proxy would strand on some server connection: [`apply_migrations`] takes a transaction-level
/// lock instead.
static POOLER_SAFE_MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(|| {
        let mut migrator = sqlx::migrate!("../../migrations");
        migrator.set_locking(false);
        migrator
    });

/// Serializes concurrent migration runs (any constant works; this spells "keystone").
const MIGRATION_LOCK_KEY: i64 = 0x6b65_7973_746f_6e65;

/// Applies pending migrations, then (with `role_limits`) makes the limits the defaults of
/// the role the functions connect as; answers the versions now applied, oldest first.
///
/// Everything runs in one transaction on a connection of its own (named
/// [`MIGRATION_APPLICATION_NAME`]), under a transaction-level advisory lock, so it works
/// through RDS Proxy or PgBouncer as well as directly: concurrent runs wait for each other, a
/// failure applies nothing, and the named statements sqlx's migrator prepares are deallocated
/// before the server connection goes back to a proxy's pool.
///
/// # Errors
/// A migration that fails (nothing is applied), a role that cannot be altered, or a database
/// failure.
pub async fn apply_migrations(
    db: &Database,
    role_limits: Option<(&str, TransactionLimits)>,
) -> Result<Vec<i64>, StoreError> {
    let mut conn = db.migration_connection().await?;
    let mut tx = sqlx::Connection::begin(&mut conn).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    restamp_superseded_forms(&mut tx).await?;
    // `run_direct` is `run` on a connection: `run(&mut *tx)` makes this future not `Send`
    // ("implementation of `Acquire` is not general enough").
    POOLER_SAFE_MIGRATOR
        .run_direct(None, &mut *tx, false)
        .await
        .map_err(migration_error)?;
    if let Some((role, limits)) = role_limits {
        set_role_limits(&mut tx, role, limits).await?;
        database::limit_this_session(&mut tx, role, limits).await?;
    }
    let applied =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
    sqlx::raw_sql("DEALLOCATE ALL").execute(&mut *tx).await?;
    tx.commit().await?;
    sqlx::Connection::close(conn).await?;
    Ok(applied)
}

/// Forms a released migration had before its file was (wrongly) edited, which a later
/// migration brings to the released form: a database that applied one of them is re-stamped
/// with the released checksum instead of being refused. (SHA-384 of each earlier file.)
const SUPERSEDED_FORMS: &[(i64, &str)] = &[
    (
        20_261_124_000_006,
        "960a542dd15d13ea8e32eab703dc00ffb69f3b3be9cb67e542ffde067ec4b1d619bb1e3e5aa800fa100dcbc5c329a88a",
    ),
    (
        20_261_124_000_006,
        "e51d4bafd94ab18be9e6e638b95fd995fe9c4b5426eee00059a8449f794f538bce569f58f0a3511010d81bc40b467ebb",
    ),
    (
        20_261_124_000_006,
        "4cb7fed0e38155cf2c4ef57bf9c36439d7012d0e5f096b76ac8e50b05783ced9256b5c7336f1bba74135d59aa16fc9e0",
    ),
];

/// Re-stamps migrations applied in a [`SUPERSEDED_FORMS`] form with their released checksum.
async fn restamp_superseded_forms(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let history: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
            .persistent(false)
            .fetch_one(&mut *conn)
            .await?;
    if history.is_none() {
        return Ok(());
    }
    for (version, checksum) in SUPERSEDED_FORMS {
        let Some(released) = MIGRATOR.iter().find(|m| m.version == *version) else {
            continue;
        };
        let earlier = hex_bytes(checksum);
        let restamped = sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = $3 WHERE version = $1 AND checksum = $2",
        )
        .bind(version)
        .bind(&earlier)
        .bind(released.checksum.as_ref())
        .persistent(false)
        .execute(&mut *conn)
        .await?;
        if restamped.rows_affected() > 0 {
            tracing::warn!(
                version,
                "migration applied in an earlier form; re-stamped, a later migration brings it \
                 to the released form"
            );
        }
    }
    Ok(())
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .filter_map(|i| hex.get(i..i + 2))
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

/// Names the migration and what disagrees, so an operator knows what to look at.
fn migration_error(error: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError as E;
    let named = |version: i64| match MIGRATOR.iter().find(|m| m.version == version) {
        Some(m) => format!("migration {version} ({})", m.description),
        None => format!("migration {version}"),
    };
    StoreError::Migration(match &error {
        E::VersionMismatch(v) => format!(
            "{} was applied to this database with other contents than migrations/ now has: \
             an applied migration file was edited",
            named(*v)
        ),
        E::VersionMissing(v) => format!(
            "{} is applied to this database but is not in migrations/: this build is older \
             than the database",
            named(*v)
        ),
        E::Dirty(v) => format!("{} failed part-way and must be repaired by hand", named(*v)),
        E::ExecuteMigration(cause, v) => format!("{} failed: {cause}", named(*v)),
        other => other.to_string(),
    })
}

/// A duration as whole milliseconds for SQL interval arithmetic, saturating.
pub(crate) fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

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
