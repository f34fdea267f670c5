//! What the local stack serves: every HTTP function's routes on one router, with the same
//! paths as API Gateway. The binary in `main.rs` adds the database, SQS, demo data and
//! signals.

pub mod embedded_pg;

use axum::Router;
use keystone_http::AppState;
use utoipa::openapi::OpenApi;

/// An HTTP function: its binary (and SAM `BuildProperties.Binary`), method and route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpFunction {
    pub binary: &'static str,
    pub method: &'static str,
    pub path: &'static str,
}

/// Every HTTP function. The infra tests hold `infra/template.yaml` to exactly this list.
pub const HTTP_FUNCTIONS: [HttpFunction; 41] = [
    HttpFunction {
        binary: "complete-task-group",
        method: complete_task_group::METHOD,
        path: complete_task_group::ROUTE,
    },
    HttpFunction {
        binary: "adjust-batch",
        method: adjust_batch::METHOD,
        path: adjust_batch::ROUTE,
    },
    HttpFunction {
        binary: "create-batch",
        method: create_batch::METHOD,
        path: create_batch::ROUTE,
    },
    HttpFunction {
        binary: "finalize-order",
        method: finalize_order::METHOD,
        path: finalize_order::ROUTE,
    },
    HttpFunction {
        binary: "auth-login",
        method: auth_login::METHOD,
        path: auth_login::ROUTE,
    },
    HttpFunction {
        binary: "auth-me",
        method: auth_me::METHOD,
        path: auth_me::ROUTE,
    },
    HttpFunction {
        binary: "my-batches",
        method: my_batches::METHOD,
        path: my_batches::ROUTE,
    },
    HttpFunction {
        binary: "order-notifications",
        method: order_notifications::METHOD,
        path: order_notifications::ROUTE,
    },
    HttpFunction {
        binary: "notifications-redrive",
        method: notifications_redrive::METHOD,
        path: notifications_redrive::ROUTE,
    },
    HttpFunction {
        binary: "get-order",
        method: get_order::METHOD,
        path: get_order::ROUTE,
    },
    HttpFunction {
        binary: "create-order",
        method: create_order::METHOD,
        path: create_order::ROUTE,
    },
    HttpFunction {
        binary: "list-orders",
        method: list_orders::METHOD,
        path: list_orders::ROUTE,
    },
    HttpFunction {
        binary: "delete-order",
        method: delete_order::METHOD,
        path: delete_order::ROUTE,
    },
    HttpFunction {
        binary: "list-batches",
        method: list_batches::METHOD,
        path: list_batches::ROUTE,
    },
    HttpFunction {
        binary: "list-batch-tasks",
        method: list_batch_tasks::METHOD,
        path: list_batch_tasks::ROUTE,
    },
    HttpFunction {
        binary: "list-stations",
        method: list_stations::METHOD,
        path: list_stations::ROUTE,
    },
    HttpFunction {
        binary: "list-sops",
        method: list_sops::METHOD,
        path: list_sops::ROUTE,
    },
    HttpFunction {
        binary: "list-scenes",
        method: list_scenes::METHOD,
        path: list_scenes::ROUTE,
    },
    HttpFunction {
        binary: "list-robot-types",
        method: list_robot_types::METHOD,
        path: list_robot_types::ROUTE,
    },
    HttpFunction {
        binary: "get-batch",
        method: get_batch::METHOD,
        path: get_batch::ROUTE,
    },
    HttpFunction {
        binary: "cancel-batch",
        method: cancel_batch::METHOD,
        path: cancel_batch::ROUTE,
    },
    HttpFunction {
        binary: "reopen-tasks",
        method: reopen_tasks::METHOD,
        path: reopen_tasks::ROUTE,
    },
    HttpFunction {
        binary: "pause-order",
        method: pause_order::METHOD,
        path: pause_order::ROUTE,
    },
    HttpFunction {
        binary: "resume-order",
        method: resume_order::METHOD,
        path: resume_order::ROUTE,
    },
    HttpFunction {
        binary: "cancel-order",
        method: cancel_order::METHOD,
        path: cancel_order::ROUTE,
    },
    HttpFunction {
        binary: "update-order",
        method: update_order::METHOD,
        path: update_order::ROUTE,
    },
    HttpFunction {
        binary: "update-batch",
        method: update_batch::METHOD,
        path: update_batch::ROUTE,
    },
    HttpFunction {
        binary: "recall-batch",
        method: recall_batch::METHOD,
        path: recall_batch::ROUTE,
    },
    HttpFunction {
        binary: "delete-batch",
        method: delete_batch::METHOD,
        path: delete_batch::ROUTE,
    },
    HttpFunction {
        binary: "auth-logout",
        method: auth_logout::METHOD,
        path: auth_logout::ROUTE,
    },
    HttpFunction {
        binary: "station-break",
        method: station_break::METHOD,
        path: station_break::ROUTE,
    },
    HttpFunction {
        binary: "station-end-break",
        method: station_end_break::METHOD,
        path: station_end_break::ROUTE,
    },
    HttpFunction {
        binary: "list-collectors",
        method: list_collectors::METHOD,
        path: list_collectors::ROUTE,
    },
    HttpFunction {
        binary: "create-collector",
        method: create_collector::METHOD,
        path: create_collector::ROUTE,
    },
    HttpFunction {
        binary: "get-collector",
        method: get_collector::METHOD,
        path: get_collector::ROUTE,
    },
    HttpFunction {
        binary: "update-collector",
        method: update_collector::METHOD,
        path: update_collector::ROUTE,
    },
    HttpFunction {
        binary: "delete-collector",
        method: delete_collector::METHOD,
        path: delete_collector::ROUTE,
    },
    HttpFunction {
        binary: "create-station",
        method: create_station::METHOD,
        path: create_station::ROUTE,
    },
    HttpFunction {
        binary: "get-station",
        method: get_station::METHOD,
        path: get_station::ROUTE,
    },
    HttpFunction {
        binary: "update-station",
        method: update_station::METHOD,
        path: update_station::ROUTE,
    },
    HttpFunction {
        binary: "delete-station",
        method: delete_station::METHOD,
        path: delete_station::ROUTE,
    },
];

/// Every HTTP function's routes, merged, and the API document they make. The
/// document is built from the same annotated handlers the router serves, so no route can be
/// served without being documented.
fn functions() -> (Router<AppState>, OpenApi) {
    complete_task_group::routes()
        .merge(adjust_batch::routes())
        .merge(create_batch::routes())
        .merge(finalize_order::routes())
        .merge(auth_login::routes())
        .merge(auth_me::routes())
        .merge(my_batches::routes())
        .merge(order_notifications::routes())
        .merge(notifications_redrive::routes())
        .merge(get_order::routes())
        .merge(create_order::routes())
        .merge(list_orders::routes())
        .merge(delete_order::routes())
        .merge(list_batches::routes())
        .merge(list_batch_tasks::routes())
        .merge(list_stations::routes())
        .merge(list_sops::routes())
        .merge(list_scenes::routes())
        .merge(list_robot_types::routes())
        .merge(get_batch::routes())
        .merge(cancel_batch::routes())
        .merge(reopen_tasks::routes())
        .merge(pause_order::routes())
        .merge(resume_order::routes())
        .merge(cancel_order::routes())
        .merge(update_order::routes())
        .merge(update_batch::routes())
        .merge(recall_batch::routes())
        .merge(delete_batch::routes())
        .merge(auth_logout::routes())
        .merge(station_break::routes())
        .merge(station_end_break::routes())
        .merge(list_collectors::routes())
        .merge(create_collector::routes())
        .merge(get_collector::routes())
        .merge(update_collector::routes())
        .merge(delete_collector::routes())
        .merge(create_station::routes())
        .merge(get_station::routes())
        .merge(update_station::routes())
        .merge(delete_station::routes())
        .split_for_parts()
}

/// The API document of every HTTP function, as committed in `docs/openapi.json`.
pub fn openapi() -> OpenApi {
    keystone_http::openapi::document(functions().1)
}

/// The API document as served and committed: pretty JSON with a final newline.
pub fn openapi_json() -> String {
    render(&openapi())
}

fn render(document: &OpenApi) -> String {
    let mut json = document
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot render the API document: {e}\"}}"));
    json.push('\n');
    json
}

/// Every HTTP function's routes, merged, with the shared fallbacks and body limit, plus the
/// API document at `/openapi.json` and its reference page at `/docs`.
pub fn routes() -> Router<AppState> {
    let (functions, paths) = functions();
    let document = keystone_http::openapi::document(paths);
    keystone_http::finish_router(functions.merge(reference::routes(&document)))
}

/// `/openapi.json` and `/docs`: Swagger UI, whose assets are compiled into the binary (no CDN:
/// devices and CI have no internet).
mod reference {
    use axum::Router;
    use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use utoipa::openapi::OpenApi;

    const DOCS_HTML: &str = include_str!("../assets/docs.html");
    const BUNDLE_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
    const UI_CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");

    fn asset(
        content_type: &'static str,
        body: &'static [u8],
    ) -> impl IntoResponse + Clone + Send + 'static {
        (
            [
                (CONTENT_TYPE, content_type),
                (CACHE_CONTROL, "max-age=3600"),
            ],
            body,
        )
    }

    pub(super) fn routes<S: Clone + Send + Sync + 'static>(document: &OpenApi) -> Router<S> {
        let json = super::render(document);
        Router::new()
            .route(
                "/openapi.json",
                get(move || async move { ([(CONTENT_TYPE, "application/json")], json) }),
            )
            .route(
                "/docs",
                get(|| async { ([(CONTENT_TYPE, "text/html; charset=utf-8")], DOCS_HTML) }),
            )
            .route(
                "/docs/swagger-ui-bundle.js",
                get(|| async { asset("text/javascript; charset=utf-8", BUNDLE_JS) }),
            )
            .route(
                "/docs/swagger-ui.css",
                get(|| async { asset("text/css; charset=utf-8", UI_CSS) }),
            )
    }
}

/// The methods a browser may send from another origin: every route's, as the template's
/// `CorsConfiguration.AllowMethods` lists them (a test keeps the two and the routes in step).
pub const CORS_METHODS: [axum::http::Method; 5] = [
    axum::http::Method::GET,
    axum::http::Method::POST,
    axum::http::Method::PATCH,
    axum::http::Method::DELETE,
    axum::http::Method::OPTIONS,
];

/// CORS for a browser client on another origin (the Synapse dev server): `origins` is a
/// comma-separated list (`KEYSTONE_CORS_ORIGINS`, `*` for any origin); unset, only pages served
/// from this machine (`localhost`, `127.0.0.1`, `[::1]`, any port) may call, so a web page
/// elsewhere cannot drive a developer's stack with the demo credentials. In AWS the HTTP API's
/// own CORS configuration is the only one.
pub fn cors(origins: Option<&str>) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow_origin = match origins.map(str::trim).filter(|o| !o.is_empty()) {
        Some("*") => AllowOrigin::any(),
        Some(list) => AllowOrigin::list(
            list.split(',')
                .filter_map(|origin| HeaderValue::from_str(origin.trim()).ok()),
        ),
        None => AllowOrigin::predicate(|origin, _| {
            origin.to_str().is_ok_and(|origin| {
                origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    .is_some_and(is_loopback_authority)
            })
        }),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods(CORS_METHODS)
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            HeaderName::from_static("idempotent-replayed"),
            header::RETRY_AFTER,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// `localhost`, `127.0.0.1` or `[::1]`, with or without a port: a name only this machine
/// answers to.
pub fn is_loopback_authority(authority: &str) -> bool {
    let (host, rest) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, rest)) => (host, rest),
            None => return false,
        },
        None => match authority.find(':') {
            Some(at) => authority.split_at(at),
            None => (authority, ""),
        },
    };
    let port_ok = rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|port| port.parse::<u16>().is_ok());
    port_ok && matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// Refuses a request whose `Host` is not a loopback name (403): a page on another site that
/// rebinds its DNS name to 127.0.0.1 still sends its own name, so it cannot reach the stack.
pub async fn loopback_host_only(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(axum::http::uri::Authority::as_str)
        });
    if host.is_some_and(is_loopback_authority) {
        next.run(request).await
    } else {
        (
            axum::http::StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "error": "the local stack answers only to localhost, 127.0.0.1 and [::1]",
                "code": "loopback_only"
            })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_authority;

    #[test]
    fn only_loopback_names_are_loopback() {
        for ok in [
            "localhost",
            "localhost:3000",
            "127.0.0.1:5173",
            "[::1]",
            "[::1]:3000",
        ] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io:3000",
            "localhost:3000@evil",
            "localhost:x",
            "[::1",
            "[::2]:3000",
            "0.0.0.0:3000",
            "",
        ] {
            assert!(!is_loopback_authority(refused), "{refused}");
        }
    }
}
