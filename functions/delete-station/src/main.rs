//! Lambda entry point: everything per-container happens in `keystone_http::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keystone_http::lambda::serve(delete_station::app).await
}
