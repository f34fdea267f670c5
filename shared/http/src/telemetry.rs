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
use tracing::Instrument;

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

/// The trace context of a request: the Lambda invocation's X-Ray trace header when tracing is
/// active, else a caller's `X-Amzn-Trace-Id` if it is a well-formed X-Ray header, else a
/// correlation id from API Gateway's request id (or a fresh one locally). Anything malformed a
/// caller sends is dropped: the context is stored with the recorder commands the request
/// queues and sent to SQS, which refuses a malformed `AWSTraceHeader` (SPEC §7). It goes on
/// every log line of the request.
fn trace_context(request: &Request) -> String {
    use keystone_store::trace_context::{correlation_id, xray_header};
    use lambda_http::RequestExt;
    let lambda = request
        .lambda_context_ref()
        .and_then(|c| c.xray_trace_id.as_deref())
        .and_then(xray_header);
    let caller = || {
        request
            .headers()
            .get("x-amzn-trace-id")
            .and_then(|v| v.to_str().ok())
            .and_then(xray_header)
    };
    if let Some(header) = lambda.or_else(caller) {
        return header;
    }
    let request_id = match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => {
            context.request_id.clone()
        }
        _ => None,
    };
    correlation_id(&request_id.unwrap_or_else(|| format!("{:016x}", rand::random::<u64>())))
}

/// Middleware around every request: its trace context (on a span, so every log line of the
/// request carries it, and on the rows it writes for later), one log line when it ends (method,
/// route, status, latency), and one latency sample and one count by route template (not the
/// raw path, so ids do not explode the dimensions) and status class.
pub async fn track_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let context = trace_context(&request);
    let span = tracing::info_span!("request", %method, route = %route, trace = %context);
    let started = Instant::now();
    let response = keystone_store::trace_context::scope(
        Some(context),
        next.run(request).instrument(span.clone()),
    )
    .await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0;
    let status = response.status().as_u16();
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    span.in_scope(|| tracing::info!(status, latency_ms = elapsed_ms, "request served"));
    metrics::histogram!("RequestLatency", "Route" => route.clone(), "StatusClass" => class)
        .record(elapsed_ms);
    metrics::counter!("Requests", "Route" => route, "StatusClass" => class).increment(1);
    response
}
