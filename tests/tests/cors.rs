//! CORS on the local stack (SPEC §10): a Synapse dev server on another port can call it.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use keystone_tests::*;
use sqlx::PgPool;
use tower::ServiceExt;

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method("OPTIONS")
        .uri("/api/v1/batches/1/complete-tasks")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        )
        .body(Body::empty())
        .unwrap()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_browser_on_another_origin_may_call_the_local_stack(pool: PgPool) {
    let permissive = router(pool.clone()).layer(keystone_local::cors(None));
    let response = permissive
        .clone()
        .oneshot(preflight("http://localhost:5173"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for header in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(header), "{allowed}");
    }

    // A real request answers with the origin allowed and the idempotency header exposed.
    let s = Scenario::new(&pool, 10, 2, 0).await;
    let request = Request::builder()
        .method("POST")
        .uri(complete_path(s.batch_id))
        .header("origin", "http://localhost:5173")
        .header("authorization", format!("Bearer {}", s.seat.token))
        .header("idempotency-key", "cors-1")
        .body(Body::from(s.group_a.body(1).to_string()))
        .unwrap();
    let response = permissive.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("idempotent-replayed"), "{exposed}");

    // With KEYSTONE_CORS_ORIGINS set, only those origins.
    let strict =
        router(pool.clone()).layer(keystone_local::cors(Some("https://synapse.example.com")));
    let allowed = strict
        .clone()
        .oneshot(preflight("https://synapse.example.com"))
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://synapse.example.com"
    );
    let refused = strict
        .oneshot(preflight("http://evil.example"))
        .await
        .unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
