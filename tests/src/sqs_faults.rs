//! An SQS endpoint that fails what a test tells it to: a loopback proxy in front of a real
//! SQS-speaking server (moto or LocalStack) that answers chosen `SendMessageBatch` calls with
//! a 500, refuses chosen entries the way SQS does (removed from the forwarded call and reported
//! in `Failed` with `SenderFault`), and records every entry SQS accepted, in the order it
//! accepted them, with its system attributes. Everything else is forwarded untouched.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An entry SQS accepted.
#[derive(Debug, Clone)]
pub struct AcceptedEntry {
    pub group_id: String,
    pub deduplication_id: String,
    pub body: Value,
    /// The `AWSTraceHeader` system attribute, if it was sent.
    pub trace_header: Option<String>,
    /// Keystone's trace context attribute, if it was sent.
    pub trace_attribute: Option<String>,
}

type EntryRule = Box<dyn Fn(&Value) -> bool + Send + Sync>;

#[derive(Default)]
struct Faults {
    /// `SendMessageBatch` calls to answer 500, by their number (1 = the first call).
    failing_calls: Vec<usize>,
    calls: usize,
    /// Entries whose body matches are refused, as many times as the count says.
    refusals: Vec<(EntryRule, usize)>,
    accepted: Vec<AcceptedEntry>,
}

/// The proxy; its `endpoint` goes where an SQS endpoint URL goes.
#[derive(Clone)]
pub struct SqsFaults {
    pub endpoint: String,
    faults: Arc<Mutex<Faults>>,
}

struct Upstream {
    url: String,
    http: reqwest::Client,
    faults: Arc<Mutex<Faults>>,
}

impl SqsFaults {
    /// Starts a proxy in front of `upstream` (an SQS endpoint URL).
    pub async fn start(upstream: &str) -> Self {
        let faults = Arc::new(Mutex::new(Faults::default()));
        let state = Arc::new(Upstream {
            url: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            faults: faults.clone(),
        });
        let app = axum::Router::new().fallback(proxy).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            faults,
        }
    }

    /// An SQS client of this endpoint.
    pub async fn client(&self) -> aws_sdk_sqs::Client {
        keystone_queue::sqs_client(Some(&self.endpoint)).await
    }

    /// The `n`-th `SendMessageBatch` call from now on (1 = the next) answers 500 unsent.
    pub fn fail_batch_call(&self, n: usize) {
        let mut faults = self.faults.lock().expect("lock");
        let call = faults.calls + n;
        faults.failing_calls.push(call);
    }

    /// Refuses the next `times` entries whose parsed body `matches`.
    pub fn refuse_entries(
        &self,
        times: usize,
        matches: impl Fn(&Value) -> bool + Send + Sync + 'static,
    ) {
        self.faults
            .lock()
            .expect("lock")
            .refusals
            .push((Box::new(matches), times));
    }

    /// Every entry SQS accepted so far, in the order it accepted them.
    pub fn accepted(&self) -> Vec<AcceptedEntry> {
        self.faults.lock().expect("lock").accepted.clone()
    }
}

async fn proxy(
    axum::extract::State(upstream): axum::extract::State<Arc<Upstream>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if target != "AmazonSQS.SendMessageBatch" {
        return forward(&upstream, &headers, body.to_vec()).await.1;
    }
    let Ok(mut request) = serde_json::from_slice::<Value>(&body) else {
        return forward(&upstream, &headers, body.to_vec()).await.1;
    };
    let mut refused = Vec::new();
    {
        let mut faults = upstream.faults.lock().expect("lock");
        faults.calls += 1;
        let call = faults.calls;
        if faults.failing_calls.contains(&call) {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/x-amz-json-1.0")],
                json!({"__type": "com.amazonaws.sqs#InternalError", "message": "injected"})
                    .to_string(),
            )
                .into_response();
        }
        if let Some(entries) = request.get_mut("Entries").and_then(Value::as_array_mut) {
            entries.retain(|entry| {
                let body: Value = entry["MessageBody"]
                    .as_str()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null);
                let rule = faults
                    .refusals
                    .iter_mut()
                    .find(|(matches, times)| *times > 0 && matches(&body));
                match rule {
                    Some((_, times)) => {
                        *times -= 1;
                        refused.push(entry["Id"].as_str().unwrap_or_default().to_owned());
                        false
                    }
                    None => true,
                }
            });
        }
    }
    let entries: Vec<Value> = request["Entries"].as_array().cloned().unwrap_or_default();
    let (status, response) = if entries.is_empty() {
        (StatusCode::OK, json!({"Successful": [], "Failed": []}))
    } else {
        let forwarded = serde_json::to_vec(&request).unwrap_or_default();
        let (status, response) = forward(&upstream, &headers, forwarded).await;
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&body).unwrap_or_else(|_| json!({})),
        )
    };
    let mut response = response;
    if status.is_success() {
        let successful: Vec<String> = response["Successful"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["Id"].as_str().map(str::to_owned))
            .collect();
        let mut faults = upstream.faults.lock().expect("lock");
        for entry in entries.iter().filter(|e| {
            successful
                .iter()
                .any(|id| Some(id.as_str()) == e["Id"].as_str())
        }) {
            faults.accepted.push(AcceptedEntry {
                group_id: entry["MessageGroupId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                deduplication_id: entry["MessageDeduplicationId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                body: entry["MessageBody"]
                    .as_str()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null),
                trace_header: entry["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
                    .as_str()
                    .map(str::to_owned),
                trace_attribute:
                    entry["MessageAttributes"]["keystone_trace_context"]["StringValue"]
                        .as_str()
                        .map(str::to_owned),
            });
        }
        let failed = response["Failed"].as_array().cloned().unwrap_or_default();
        let mut failed = failed;
        failed.extend(refused.iter().map(|id| {
            json!({"Id": id, "SenderFault": true, "Code": "InvalidParameterValue",
                   "Message": "injected refusal"})
        }));
        response["Failed"] = Value::Array(failed);
        if response.get("Successful").is_none() {
            response["Successful"] = json!([]);
        }
    }
    (
        status,
        [("content-type", "application/x-amz-json-1.0")],
        response.to_string(),
    )
        .into_response()
}

async fn forward(
    upstream: &Upstream,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> (StatusCode, Response) {
    let mut request = upstream.http.post(format!("{}/", upstream.url)).body(body);
    for (name, value) in headers {
        if !matches!(name.as_str(), "host" | "content-length") {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/x-amz-json-1.0")
                .to_owned();
            let bytes = answer.bytes().await.unwrap_or_default();
            (
                status,
                (status, [("content-type", content_type)], bytes).into_response(),
            )
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        ),
    }
}
