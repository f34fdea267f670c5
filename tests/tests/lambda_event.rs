//! The function as deployed: an API Gateway HTTP API (payload v2) event through
//! `lambda_http`'s adapter into the function's router, and the Lambda response back out.

use base64::Engine;
use keystone_tests::*;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::{Value, json};
use sqlx::PgPool;

fn http_api_event(path: &str, headers: Value, body: &str, base64: bool) -> LambdaRequest {
    let body = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        body.to_owned()
    };
    let raw_id = path.split('/').nth(4).unwrap_or_default();
    serde_json::from_value(json!({
        "version": "2.0",
        "routeKey": "POST /api/v1/batches/{id}/complete-tasks",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "pathParameters": {"id": raw_id},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "keystone",
            "domainName": "keystone.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "keystone",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "synapse-mobile/1.0"
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "POST /api/v1/batches/{id}/complete-tasks",
            "stage": "$default",
            "time": "23/Nov/2026:21:00:00 +0000",
            "timeEpoch": 1795467600000_u64
        },
        "body": body,
        "isBase64Encoded": base64
    }))
    .expect("a valid HTTP API v2 event")
}

async fn invoke(pool: &PgPool, event: LambdaRequest) -> Value {
    let adapter = Adapter::from(complete_task_group::app(state(pool.clone())));
    let response = adapter
        .oneshot(LambdaEvent::new(event, Context::default()))
        .await
        .expect("the adapter answers");
    serde_json::to_value(response).expect("the Lambda response serializes")
}

fn body_of(response: &Value) -> Value {
    let raw = response["body"].as_str().unwrap_or_default();
    let text = if response["isBase64Encoded"] == json!(true) {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap(),
        )
        .unwrap()
    } else {
        raw.to_owned()
    };
    serde_json::from_str(&text).unwrap()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_http_api_v2_event_reaches_the_handler_with_path_headers_and_body(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let path = complete_path(s.batch_id);
    let headers = json!({
        "authorization": format!("Bearer {}", s.seat.token),
        "content-type": "application/json",
        "idempotency-key": "lambda-1"
    });
    let body = s.group_a.body(2).to_string();

    let response = invoke(&pool, http_api_event(&path, headers.clone(), &body, true)).await;

    assert_eq!(response["statusCode"], json!(200), "{response}");
    let payload = body_of(&response);
    assert_eq!(payload["completed_count"], json!(2));
    assert_eq!(payload["batch"]["id"], json!(s.batch_id.to_string()));
    assert_eq!(
        response["headers"]["content-type"],
        json!("application/json")
    );

    // The same event again is a replay, and its header survives the Lambda response mapping.
    let replay = invoke(&pool, http_api_event(&path, headers, &body, false)).await;
    assert_eq!(replay["statusCode"], json!(200));
    assert_eq!(
        replay["headers"]["idempotent-replayed"],
        json!("true"),
        "{replay}"
    );
    assert_eq!(body_of(&replay), payload);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn lambda_events_with_bad_ids_tokens_or_bodies_get_json_errors(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 0).await;
    let auth = json!({"authorization": format!("Bearer {}", s.seat.token)});
    let cases = [
        (
            complete_path("abc"),
            auth.clone(),
            "{}".to_owned(),
            400,
            "invalid batch id",
        ),
        (
            complete_path(s.batch_id),
            json!({}),
            "{}".to_owned(),
            401,
            "authentication required",
        ),
        (
            complete_path(s.batch_id),
            auth.clone(),
            "{\"quantity\":".to_owned(),
            400,
            "invalid request body",
        ),
        (
            complete_path(s.batch_id),
            auth,
            "x".repeat(70_000),
            413,
            "request body too large",
        ),
    ];
    for (path, headers, body, status, message) in cases {
        let response = invoke(&pool, http_api_event(&path, headers, &body, false)).await;
        assert_eq!(response["statusCode"], json!(status), "{path}: {response}");
        assert_eq!(body_of(&response)["error"], json!(message));
    }
}
