//! Lambda entry point: everything per-container happens in `keystone_http::lambda`, plus the
//! SQS publisher that sends an order's notifications right after the request commits.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keystone_http::lambda::serve_with(delete_batch::app, |state| async move {
        let publisher = keystone_queue::publisher_from_env(state.db.clone()).await?;
        Ok::<_, keystone_store::config::ConfigError>(state.with_outbox(publisher))
    })
    .await
}
