//! `recorder-notifier`: the SQS FIFO queue's consumer, with `ReportBatchItemFailures`. Each
//! message is claimed with a leased delivery record, so the device is called once however
//! often SQS delivers it.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use keystone_queue::dead_letters::DeadLetterRoute;
use keystone_queue::{
    NotifierConfig, QueueConfig, RecorderNotifier, sqs_client, stop_taking_work_at,
};
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
    let config = NotifierConfig::from_lookup(&env)?;
    // One RPC at its timeout plus the claim and the record around it.
    let reserve = config.rpc_timeout + std::time::Duration::from_secs(5);
    let notifier = Arc::new(
        RecorderNotifier::new(environment.database(&db)?, config)?
            .with_dead_letters(DeadLetterRoute::new(client, queue.queue_url)),
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let notifier = notifier.clone();
        async move {
            let stop_at = stop_taking_work_at(event.context.deadline(), reserve);
            let response = notifier.handle_until(event.payload, Some(stop_at)).await;
            keystone_http::telemetry::flush();
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}
