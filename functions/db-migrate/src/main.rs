//! `db-migrate`: applies pending migrations (`keystone_store::MIGRATOR`) when invoked. The
//! deploy pipeline invokes it after every `sam deploy` (see docs/deploy.md); migrations are
//! idempotent, so invoking it twice is harmless. Answers the versions now applied.

use keystone_store::config::DbConfig;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let environment = keystone_secrets::resolve().await?;
    let db = DbConfig::from_lookup(&|name: &str| environment.get(name))?;
    let db = environment.database(&db)?;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
        let db = db.clone();
        async move {
            let applied = keystone_store::apply_migrations(&db).await?;
            tracing::info!(?applied, "migrations applied");
            Ok::<_, lambda_runtime::Error>(json!({ "applied_versions": applied }))
        }
    }))
    .await
}
