//! Lambda entry point: everything per-container happens in `keystone_http::lambda`, plus the
//! SQS publisher that sends the recorder commands a request queued right after it commits.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keystone_http::lambda::serve_with(resume_order::app, |state| async move {
        let publisher = keystone_queue::publisher_from_env(state.db.clone()).await?;
        Ok::<_, keystone_store::config::ConfigError>(state.with_outbox(publisher))
    })
    .await
}
