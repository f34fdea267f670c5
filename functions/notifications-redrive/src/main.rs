//! Lambda entry point: everything per-container happens in `keystone_http::lambda`, plus the
//! route to the queue's dead-letter queue and the publisher that sends redriven commands.

use std::sync::Arc;

use keystone_queue::dead_letters::DeadLetterRoute;
use keystone_queue::{QueueConfig, SqsPublisher, sqs_client};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keystone_http::lambda::serve_with(notifications_redrive::app, |state| async move {
        let queue = QueueConfig::from_env()?;
        let client = sqs_client(queue.endpoint_url.as_deref()).await;
        let route = DeadLetterRoute::new(client.clone(), queue.queue_url.clone());
        let publisher = SqsPublisher::new(client, queue.queue_url, state.db.clone())
            .with_park_after(queue.park_after);
        Ok::<_, keystone_store::config::ConfigError>(
            state
                .with_redrive(Arc::new(route))
                .with_outbox(Arc::new(publisher)),
        )
    })
    .await
}
