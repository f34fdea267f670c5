//! The trace context of the request being served, for the rows it writes that outlive it (the
//! recorder outbox). Set by the HTTP layer around each request's future; absent elsewhere.

tokio::task_local! {
    static TRACE_CONTEXT: Option<String>;
}

/// Runs `work` with `context` as the current request's trace context.
pub async fn scope<F: std::future::Future>(context: Option<String>, work: F) -> F::Output {
    TRACE_CONTEXT.scope(context, work).await
}

/// The current request's trace context, if any.
pub fn current() -> Option<String> {
    TRACE_CONTEXT.try_with(Clone::clone).ok().flatten()
}
