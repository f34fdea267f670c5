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
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
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

fn allowed_origin(response: &axum::response::Response) -> Option<&str> {
    response
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
}

/// Safe by default: unconfigured, only pages served from this machine may call the local
/// stack; `*` must be asked for.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn by_default_a_page_on_another_site_may_not_call_the_local_stack(pool: PgPool) {
    let default = router(pool.clone()).layer(keystone_local::cors(None));
    for origin in [
        "http://localhost:5173",
        "http://127.0.0.1:8080",
        "http://[::1]:3000",
    ] {
        let response = default.clone().oneshot(preflight(origin)).await.unwrap();
        assert_eq!(allowed_origin(&response), Some(origin));
    }
    for origin in [
        "https://evil.example",
        "http://localhost.evil.example",
        "null",
    ] {
        let response = default.clone().oneshot(preflight(origin)).await.unwrap();
        assert_eq!(allowed_origin(&response), None, "{origin}");
    }
    let any = router(pool).layer(keystone_local::cors(Some("*")));
    let response = any
        .oneshot(preflight("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(allowed_origin(&response), Some("*"));
}

/// DNS rebinding: a page whose own name resolves to 127.0.0.1 sends that name as `Host`; the
/// local stack answers only to loopback names.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_local_stack_refuses_a_host_that_is_not_a_loopback_name(pool: PgPool) {
    let app = router(pool).layer(axum::middleware::from_fn(
        keystone_local::loopback_host_only,
    ));
    let login = |host: &str| {
        Request::builder()
            .method("POST")
            .uri("/api/v1/auth/login")
            .header("host", host)
            .body(Body::from(
                serde_json::json!({"account": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
                    .to_string(),
            ))
            .unwrap()
    };
    for host in [
        "rebound.evil.example",
        "rebound.evil.example:3000",
        "10.0.0.5:3000",
    ] {
        let response = app.clone().oneshot(login(host)).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{host}");
    }
    for host in ["127.0.0.1:3000", "localhost:3000", "[::1]:3000"] {
        let response = app.clone().oneshot(login(host)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }
}
