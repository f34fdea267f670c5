//! Lambda entry point: everything per-container happens in `keystone_http::lambda::serve`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keystone_http::lambda::serve(list_batches::app).await
}
