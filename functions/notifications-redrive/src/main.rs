//! Lambda entry point: everything per-container happens in `keystone_http::lambda`, plus the
//! route to the queue's dead-letter queue.

use std::sync::Arc;

use keystone_queue::dead_letters::DeadLetterRoute;
use keystone_queue::{QueueConfig, sqs_client};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keystone_http::lambda::serve_with(notifications_redrive::app, |state| async move {
        let queue = QueueConfig::from_env()?;
        let client = sqs_client(queue.endpoint_url.as_deref()).await;
        let route = DeadLetterRoute::new(client, queue.queue_url);
        Ok::<_, keystone_store::config::ConfigError>(state.with_redrive(Arc::new(route)))
    })
    .await
}
