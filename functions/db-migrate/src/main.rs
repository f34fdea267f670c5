//! `db-migrate`: applies pending migrations (`keystone_store::MIGRATOR`) when invoked, then
//! makes the configured lock, statement and idle limits (`DB_*_TIMEOUT_MS`) the defaults of the
//! application role, so the functions never send them. The deploy pipeline invokes it after
//! every `sam deploy` (see docs/deploy.md); invoking it twice is harmless. Answers the versions
//! now applied.

use keystone_store::config::DbConfig;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let environment = keystone_secrets::resolve().await?;
    let config = DbConfig::from_lookup(&|name: &str| environment.get(name))?;
    let limits = config.limits;
    let db = environment.database(&config)?;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
        let db = db.clone();
        async move {
            let role = keystone_store::APPLICATION_ROLE;
            let applied = keystone_store::apply_migrations(&db, Some((role, limits))).await?;
            tracing::info!(
                ?applied,
                role,
                ?limits,
                "migrations applied, role limits set"
            );
            Ok::<_, lambda_runtime::Error>(json!({ "applied_versions": applied }))
        }
    }))
    .await
}
