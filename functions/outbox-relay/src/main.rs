//! `outbox-relay`: every minute (EventBridge), publishes every recorder notification still
//! unpublished, oldest first, and purges expired idempotency keys. Concurrent runs never send
//! the same row (leases taken with `FOR UPDATE SKIP LOCKED`).

use std::sync::Arc;

use keystone_queue::relay::{RELAY_BATCH, RELAY_MAX_ROUNDS, RELAY_ROUND_RESERVE};
use keystone_queue::{QueueConfig, SqsPublisher, relay_until, sqs_client, stop_taking_work_at};
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
            .with_park_after(queue.park_after)
            .with_retention(queue.retention),
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let publisher = publisher.clone();
        async move {
            // No new round once too little of the invocation is left for one.
            let stop_at = stop_taking_work_at(event.context.deadline(), RELAY_ROUND_RESERVE);
            let outcome =
                relay_until(&publisher, RELAY_BATCH, RELAY_MAX_ROUNDS, Some(stop_at)).await;
            if outcome.is_err() {
                metrics::counter!("RelayErrors").increment(1);
            }
            keystone_http::telemetry::flush();
            outcome.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
