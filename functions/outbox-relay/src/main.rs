//! `outbox-relay`: every minute (EventBridge), publishes every recorder notification still
//! unpublished, oldest first, and purges expired idempotency keys. Concurrent runs never send
//! the same row (leases taken with `FOR UPDATE SKIP LOCKED`).

use std::sync::Arc;

use keystone_queue::relay::{RELAY_BATCH, RELAY_MAX_ROUNDS};
use keystone_queue::{QueueConfig, SqsPublisher, relay, sqs_client};
use keystone_store::config::DbConfig;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    if let Err(e) = keystone_http::telemetry::install(keystone_http::lambda::function_name()) {
        tracing::warn!(error = %e, "metrics are off");
    }
    let environment = keystone_secrets::resolve().await?;
    let env = |name: &str| environment.get(name);
    let db = DbConfig::from_lookup(&env)?;
    let queue = QueueConfig::from_lookup(&env)?;
    let client = sqs_client(queue.endpoint_url.as_deref()).await;
    let publisher = Arc::new(
        SqsPublisher::new(client, queue.queue_url, environment.database(&db)?)
            .with_park_after(queue.park_after),
    );
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let publisher = publisher.clone();
        async move {
            let outcome = relay(&publisher, RELAY_BATCH, RELAY_MAX_ROUNDS).await;
            if outcome.is_err() {
                metrics::counter!("RelayErrors").increment(1);
            }
            keystone_http::telemetry::flush();
            outcome.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
