//! `keystone-local`: the whole API on one port, for development and demos (SPEC §9).
//!
//! With `DATABASE_URL` unset it runs a private PostgreSQL under `target/keystone-local/`,
//! applies migrations and loads demo data; with `DATABASE_URL` set it uses that database and
//! loads demo data only when started with `--demo`. It prints ready-to-use tokens and a
//! sample request, logs one line when ready, and on SIGINT/SIGTERM stops serving and stops
//! whatever it started.

mod local_sqs;

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use keystone_auth::Principal;
use keystone_http::{AppState, Config};
use keystone_store::Database;
use sqlx::PgPool;
use tracing_subscriber::EnvFilter;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::post;
use keystone_queue::dead_letters::DeadLetterRoute;
use keystone_queue::poller::poll_once;
use keystone_queue::provision::create_queue_pair;
use keystone_queue::relay::{RELAY_BATCH, RELAY_MAX_ROUNDS};
use keystone_queue::{NotifierConfig, RecorderNotifier, SqsPublisher, relay, sqs_client};

use crate::local_sqs::LocalSqs;
use keystone_local::embedded_pg::EmbeddedPostgres;

/// Used when `JWT_SECRET` is unset, so the stack runs with zero configuration. Never used by
/// the Lambdas, which refuse to start without a secret.
const DEV_JWT_SECRET: &str = "keystone-local-development-secret";
/// Admin login used when `ADMIN_USERNAME`/`ADMIN_PASSWORD` are unset (local stack only).
const DEV_ADMIN: (&str, &str) = ("admin", "keystone-admin");
/// Password of the demo collectors (see demo.sql).
const DEMO_PASSWORD: &str = "keystone-demo";
const DEMO_SQL: &str = include_str!("demo.sql");
/// Name of the FIFO queue (and `-dlq`) created when `KEYSTONE_QUEUE_URL` is unset.
const LOCAL_QUEUE: &str = "keystone-recorder-commands";

type AnyError = Box<dyn Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Before any logging: log lines go to stdout, where the document goes.
    if args.iter().any(|a| a == "--openapi") {
        print!("{}", keystone_local::openapi_json());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        // Colours only for a terminal: a file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .init();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: keystone-local [--demo]\n       keystone-local --openapi   \
             print the API document (docs/openapi.json) and exit\n\n\
             See README.md for the environment variables."
        );
        return ExitCode::SUCCESS;
    }
    let demo_flag = args.iter().any(|a| a == "--demo");
    match run(demo_flag).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain: "database error" alone does not say what to fix.
            let mut cause = e.to_string();
            let mut source = e.source();
            while let Some(inner) = source {
                cause.push_str(": ");
                cause.push_str(&inner.to_string());
                source = inner.source();
            }
            tracing::error!(error = %cause, "keystone-local failed");
            ExitCode::FAILURE
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `target/` of this build: the binary sits in `target/<profile>/`.
fn target_dir() -> PathBuf {
    if let Some(dir) = env("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}

async fn run(demo_flag: bool) -> Result<(), AnyError> {
    let cluster = match env("DATABASE_URL") {
        Some(_) => None,
        None => {
            let dir = target_dir().join("keystone-local/postgres");
            let cluster = EmbeddedPostgres::start(&dir).await?;
            tracing::info!(port = cluster.port, "private PostgreSQL started");
            Some(cluster)
        }
    };
    let result = async {
        let (database_url, load_demo) = match &cluster {
            Some(cluster) => {
                create_database(&cluster.admin_url, "keystone").await?;
                (cluster.url("keystone"), true)
            }
            None => (env("DATABASE_URL").unwrap_or_default(), demo_flag),
        };
        let (endpoint, local_sqs) = match env("AWS_ENDPOINT_URL_SQS") {
            Some(endpoint) => (endpoint, None),
            None => {
                let sqs = LocalSqs::start().await?;
                (sqs.endpoint.clone(), Some(sqs))
            }
        };
        let result = serve(database_url, load_demo, &endpoint).await;
        if let Some(sqs) = local_sqs {
            sqs.stop().await;
        }
        result
    }
    .await;
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }
    result
}

async fn create_database(admin_url: &str, name: &'static str) -> Result<(), AnyError> {
    let admin = PgPool::connect(admin_url).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&admin)
            .await?;
    if !exists {
        sqlx::raw_sql("CREATE DATABASE keystone")
            .execute(&admin)
            .await?;
    }
    admin.close().await;
    Ok(())
}

async fn serve(database_url: String, load_demo: bool, sqs_endpoint: &str) -> Result<(), AnyError> {
    let config = Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some(database_url.clone()),
        "JWT_SECRET" => env(name).or_else(|| Some(DEV_JWT_SECRET.to_owned())),
        "DB_MAX_CONNECTIONS" => env(name).or_else(|| Some("10".to_owned())),
        "ADMIN_USERNAME" | "ADMIN_PASSWORD"
            if env("ADMIN_USERNAME").is_none() && env("ADMIN_PASSWORD").is_none() =>
        {
            Some(
                if name == "ADMIN_USERNAME" {
                    DEV_ADMIN.0
                } else {
                    DEV_ADMIN.1
                }
                .to_owned(),
            )
        }
        other => env(other),
    })?;
    // Lazy: the first pooled connection opens after the limits below are written, so every
    // session starts with them (the migrations' own connection fails fast if the database is
    // unreachable).
    let db = config.db.lazy_database()?;
    // The limits become the defaults of the role this stack connects as, in its database, as
    // db-migrate does for keystone_app in AWS: no request sends them.
    let role = config.db.connect_options()?.get_username().to_owned();
    let applied = keystone_store::apply_migrations(&db, Some((&role, config.db.limits))).await?;
    tracing::info!(latest = applied.last(), "migrations applied");
    if load_demo {
        load_demo_data(&db).await?;
    }
    let client = sqs_client(Some(sqs_endpoint)).await;
    let queue_url = match env("KEYSTONE_QUEUE_URL") {
        Some(url) => url,
        None => create_queue_pair(&client, LOCAL_QUEUE, 5, 30).await?.url,
    };
    tracing::info!(%queue_url, "recorder notifications go to this queue");
    let publisher = Arc::new(SqsPublisher::new(
        client.clone(),
        queue_url.clone(),
        db.clone(),
    ));
    let state = AppState::from_config_with(&config, db.clone())
        .with_outbox(publisher.clone())
        .with_redrive(Arc::new(DeadLetterRoute::new(
            client.clone(),
            queue_url.clone(),
        )));

    let port: u16 = env("PORT").map_or(Ok(3000), |p| p.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let mut app = keystone_local::routes();
    let rpc_url_template = match env("RECORDER_RPC_URL_TEMPLATE") {
        Some(template) => template,
        None => {
            app = app.route(
                "/_local/recorders/{device_id}/rpc/{action}",
                post(local_recorder),
            );
            format!("{base}/_local/recorders/{{device_id}}")
        }
    };
    let notifier = RecorderNotifier::new(
        db.clone(),
        NotifierConfig {
            rpc_url_template,
            rpc_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(15),
        },
    )?
    .with_dead_letters(DeadLetterRoute::new(client.clone(), queue_url.clone()));
    if let Err(e) = keystone_http::telemetry::install("keystone-local") {
        tracing::warn!(error = %e, "metrics are off");
    }
    let metrics_task = tokio::spawn(async {
        let mut ticks = tokio::time::interval(Duration::from_secs(10));
        loop {
            ticks.tick().await;
            keystone_http::telemetry::flush();
        }
    });
    let relay_task = tokio::spawn(relay_forever(publisher));
    let consumer_task = tokio::spawn(consume_forever(client, queue_url, notifier));

    print_banner(&db, &state, &base).await?;
    tracing::info!(address = %base, "keystone-local ready");
    let app = app
        .with_state(state)
        .layer(keystone_local::cors(
            env("KEYSTONE_CORS_ORIGINS").as_deref(),
        ))
        .layer(axum::middleware::from_fn(
            keystone_local::loopback_host_only,
        ));
    // The peer address is the source the login throttle counts by.
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    tracing::info!("shutting down");
    relay_task.abort();
    consumer_task.abort();
    metrics_task.abort();
    keystone_http::telemetry::flush();
    db.pool().close().await;
    Ok(served?)
}

/// The relay's schedule, locally: every few seconds instead of every minute.
async fn relay_forever(publisher: Arc<SqsPublisher>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticks.tick().await;
        if let Err(e) = relay(&publisher, RELAY_BATCH, RELAY_MAX_ROUNDS).await {
            tracing::warn!(error = %e, "relay run failed");
        }
    }
}

/// The consumer's event source, locally: long-poll the queue and hand batches to the same
/// handler the `recorder-notifier` Lambda runs.
async fn consume_forever(
    client: aws_sdk_sqs::Client,
    queue_url: String,
    notifier: RecorderNotifier,
) {
    loop {
        match poll_once(&client, &queue_url, &notifier, 5).await {
            Ok(outcome) if outcome.received > 0 => {
                tracing::info!(
                    received = outcome.received,
                    failed = outcome.failed,
                    "notifications consumed"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot poll the queue");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Stands in for devices' Axon recorders when `RECORDER_RPC_URL_TEMPLATE` is unset: logs the
/// command and accepts it.
async fn local_recorder(
    Path((device_id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> axum::Json<serde_json::Value> {
    // Debug-formatted: quoted with newlines and control characters escaped, so a request
    // cannot forge log lines.
    tracing::info!(?device_id, ?action, body = ?String::from_utf8_lossy(&body), "local recorder received an RPC");
    axum::Json(serde_json::json!({ "ok": true }))
}

async fn load_demo_data(db: &Database) -> Result<(), AnyError> {
    let mut tx = db.begin().await?;
    let present: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM organizations WHERE slug = 'demo' AND deleted_at IS NULL)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if present {
        tx.commit().await?;
        tracing::info!("demo data already present");
        return Ok(());
    }
    sqlx::raw_sql(DEMO_SQL).execute(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!("demo data loaded");
    Ok(())
}

/// Tokens for the demo accounts and requests to paste.
async fn print_banner(db: &Database, state: &AppState, base: &str) -> Result<(), AnyError> {
    let mut tx = db.begin().await?;
    let lifetime = chrono::Duration::hours(12);
    let keys = state.jwt.keys().await;
    let admin_name = state
        .login
        .admin
        .as_ref()
        .map_or("admin", |a| a.username.as_str());
    let admin = Principal::Admin {
        operator_id: admin_name.to_owned(),
    };
    let collectors: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, operator_id FROM data_collectors \
         WHERE operator_id IN ('DC001', 'DC002') AND deleted_at IS NULL ORDER BY operator_id",
    )
    .persistent(false)
    .fetch_all(&mut *tx)
    .await?;
    println!("\nKeystone local stack on {base}");
    println!("API reference: {base}/docs (the document: {base}/openapi.json)\n");
    println!("Tokens (12 h), to paste into a shell:");
    println!("  export ADMIN_TOKEN={}", keys.issue(&admin, lifetime)?);
    for (collector_id, operator_id) in collectors {
        let principal = Principal::Collector {
            collector_id,
            operator_id: operator_id.clone(),
            issued_at: None,
        };
        println!(
            "  export {operator_id}_TOKEN={}",
            keys.issue(&principal, lifetime)?
        );
    }
    if let Some(admin) = &state.login.admin {
        let admin_password = if admin.username == DEV_ADMIN.0 && env("ADMIN_PASSWORD").is_none() {
            format!(" / {}", DEV_ADMIN.1)
        } else {
            String::new()
        };
        println!(
            "\nLog in (demo collectors DC001/DC002: {DEMO_PASSWORD}; admin: {admin_name}{admin_password}):"
        );
        println!(
            "  curl -s -X POST {base}/api/v1/auth/login \\\n    \
             -d '{{\"account\":\"DC001\",\"password\":\"{DEMO_PASSWORD}\"}}'"
        );
    }
    let sample: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT t.batch_id, t.sop_id, t.subscene_id FROM tasks t \
         JOIN batches b ON b.id = t.batch_id JOIN workstations w ON w.id = b.workstation_id \
         JOIN data_collectors dc ON dc.id = w.data_collector_id \
         WHERE dc.operator_id = 'DC001' AND t.status = 'pending' AND t.deleted_at IS NULL \
           AND b.status IN ('pending', 'active') ORDER BY t.id LIMIT 1",
    )
    .persistent(false)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Some((batch, sop, subscene)) = sample {
        println!("\nComplete two tasks as DC001 (send it twice: the second is a replay):");
        println!(
            "  curl -s -X POST {base}/api/v1/batches/{batch}/complete-tasks \\\n    \
             -H \"Authorization: Bearer $DC001_TOKEN\" -H 'Idempotency-Key: demo-1' \\\n    \
             -d '{{\"quantity\":2,\"sop_id\":{sop},\"subscene_id\":{subscene}}}'"
        );
        println!("\nTyped one too many? Undo the last one (a collector has 15 minutes):");
        println!(
            "  curl -s -X POST {base}/api/v1/batches/{batch}/reopen-tasks \\\n    \
             -H \"Authorization: Bearer $DC001_TOKEN\" \\\n    \
             -d '{{\"quantity\":1,\"sop_id\":{sop},\"subscene_id\":{subscene}}}'"
        );
        println!("\nWhat DC001's phone shows:");
        println!("  curl -s {base}/api/v1/me/batches -H \"Authorization: Bearer $DC001_TOKEN\"");
    }
    print_console_flow(base);
    Ok(())
}

/// The admin console's flow, every step through the API: pick from the forms' lists, create
/// an order, dispatch a batch to a station, watch it.
fn print_console_flow(base: &str) {
    let auth = "-H \"Authorization: Bearer $ADMIN_TOKEN\"";
    println!("\nThe admin console's flow (ids from the lists; the demo's are 1):");
    println!("  curl -s '{base}/api/v1/stations?limit=10' {auth}");
    println!("  curl -s {base}/api/v1/sops {auth}; curl -s {base}/api/v1/scenes {auth}");
    println!(
        "  curl -s -X POST {base}/api/v1/orders {auth} -H 'Idempotency-Key: console-1' \\\n    \
         -d '{{\"organization_id\":\"1\",\"scene_id\":\"1\",\"name\":\"Console run\",\"target_count\":10}}'"
    );
    println!("  export ORDER_ID=<the id it answered>");
    println!(
        "  curl -s -X POST {base}/api/v1/batches {auth} -H 'Idempotency-Key: console-2' \\\n    \
         -d '{{\"order_id\":'$ORDER_ID',\"workstation_id\":1,\"task_groups\":[{{\"sop_id\":1,\"subscene_id\":1,\"quantity\":4}}]}}'"
    );
    println!("  curl -s \"{base}/api/v1/batches?order_id=$ORDER_ID\" {auth}");
    println!("  curl -s {base}/api/v1/orders/$ORDER_ID {auth}\n");
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        result = tokio::signal::ctrl_c() => {
            if let Err(e) = result {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            }
        }
        () = terminate => {}
    }
}
