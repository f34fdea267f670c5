//! Metrics in CloudWatch Embedded Metric Format (SPEC §9 "Operations"): the `metrics` facade
//! with `metrics_cloudwatch_embedded` as its recorder. In Lambda every invocation flushes one
//! EMF document per label set to stdout, which CloudWatch Logs turns into metrics; the local
//! stack flushes every few seconds. Per-request latency and status class come from
//! [`track_request`], on every router.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_cloudwatch_embedded::Collector;

/// The CloudWatch namespace of every Keystone metric.
pub const NAMESPACE: &str = "Keystone";

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Installs the EMF recorder for this process, with the function's name as a dimension. Once
/// per process; later calls keep the first.
///
/// # Errors
/// Another metrics recorder is already installed.
pub fn install(function: &'static str) -> Result<&'static Collector, String> {
    if let Some(collector) = COLLECTOR.get() {
        return Ok(collector);
    }
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("Function", function)
        .init()
        .map_err(|e| e.to_string())?;
    metrics::describe_histogram!("RequestLatency", metrics::Unit::Milliseconds, "per route");
    metrics::describe_histogram!(
        "RecorderRpcLatency",
        metrics::Unit::Milliseconds,
        "one device RPC"
    );
    metrics::describe_gauge!(
        "OutboxOldestUnpublishedAgeSeconds",
        metrics::Unit::Seconds,
        "age of the oldest row waiting to be published"
    );
    Ok(*COLLECTOR.get_or_init(|| collector))
}

/// Writes what was recorded since the last flush to stdout, one EMF document per line.
pub fn flush() {
    if let Some(collector) = COLLECTOR.get() {
        let stdout = std::io::stdout();
        if let Err(e) = collector.flush(stdout.lock()) {
            tracing::warn!(error = %e, "cannot write metrics");
        }
    }
}

/// Middleware: one latency sample and one request count per request, by route template (not
/// the raw path, so ids do not explode the dimensions) and status class.
pub async fn track_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::histogram!("RequestLatency", "Route" => route.clone(), "StatusClass" => class)
        .record(started.elapsed().as_secs_f64() * 1_000.0);
    metrics::counter!("Requests", "Route" => route, "StatusClass" => class).increment(1);
    response
}
