//! The production path's credentials (SPEC §9): the functions run as the least-privileged
//! application role a migration creates, keep working while their password rotates, and verify
//! the database server's certificate.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use keystone_queue::relay;
use keystone_queue::relay::RELAY_MAX_ROUNDS;
use keystone_store::config::DbConfig;
use keystone_store::{Database, SharedPassword, TransactionLimits};
use keystone_tests::notify::*;
use keystone_tests::*;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

/// A login role of this test that is a member of `keystone_app`, so it has exactly the
/// application role's rights.
async fn application_login(pool: &PgPool, password: &str) -> String {
    let name = format!("app_{}", rand::random::<u32>());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE keystone_app"
    )))
    .execute(pool)
    .await
    .unwrap();
    name
}

/// This test's database, reached as `user` over the test cluster's Unix socket, where every
/// role but the superuser must give its password.
async fn options_as(pool: &PgPool, user: &str) -> PgConnectOptions {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    std::env::var("DATABASE_URL")
        .unwrap()
        .parse::<PgConnectOptions>()
        .unwrap()
        .username(user)
        .database(&database)
}

/// Ends every session of `user`, as a proxy does when it recycles its connections.
async fn end_sessions_of(pool: &PgPool, user: &str) {
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_functions_run_as_the_least_privileged_application_role(pool: PgPool) {
    let s = Scenario::new(&pool, 3, 2, 0).await;
    s.add_axon_batch("AX-1", "axon-app", &[("in_progress", 1)])
        .await;
    let user = application_login(&pool, "app-password-1").await;
    let app_pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options_as(&pool, &user).await.password("app-password-1"))
        .await
        .unwrap();
    let db = Database::from(app_pool.clone());
    let router = router_with(db.clone());

    let adjusted = admin_post(
        &router,
        &adjust_path(s.batch_id),
        json!({"task_groups": [s.group_a.entry(1)]}),
    )
    .await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.text);
    let created = admin_post(
        &router,
        "/api/v1/batches",
        json!({"order_id": s.order_id, "workstation_id": s.seat.workstation_id,
               "task_groups": [s.group_a.entry(1)]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let completed = complete(
        &router,
        &s.seat.token,
        s.batch_id,
        s.group_a.body(1),
        &[("idempotency-key", "k1")],
    )
    .await;
    assert_eq!(completed.status, StatusCode::OK, "{}", completed.text);
    let finalized = admin_post(&router, &finalize_path(s.order_id), json!({})).await;
    assert_eq!(finalized.status, StatusCode::OK, "{}", finalized.text);
    assert_eq!(finalized.body["notifications_enqueued"], json!(1));
    for path in ["/api/v1/auth/me", "/api/v1/me/batches"] {
        let response = get(&router, path, Some(&s.seat.token)).await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
    }

    // The relay (which also purges old idempotency keys) and the consumer, as the same role.
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '2 days'")
        .execute(&pool)
        .await
        .unwrap();
    let queue = TestQueue::create("app-role", 5, 30).await;
    let outcome = relay(
        &Arc::new(queue.publisher_on(db.clone())),
        10,
        RELAY_MAX_ROUNDS,
    )
    .await
    .unwrap();
    assert_eq!((outcome.published, outcome.purged_idempotency_keys), (1, 1));
    let recorder = FakeRecorder::start().await;
    let messages = queue.drain(&queue.pair.url).await;
    let response = recorder
        .notifier_on(db.clone())
        .handle(sqs_event(messages.iter().map(as_lambda_record).collect()))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(recorder.calls().len(), 1);

    // And nothing more: no hard deletes of business rows, no schema changes, no migrations.
    for forbidden in [
        "DELETE FROM orders",
        "DELETE FROM tasks",
        "CREATE TABLE sneaky (id int)",
        "DROP TABLE tasks",
        "UPDATE _sqlx_migrations SET success = false",
        "TRUNCATE recorder_outbox",
    ] {
        let refused = sqlx::raw_sql(forbidden)
            .execute(&app_pool)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("permission denied")
                || refused.to_string().contains("must be owner"),
            "{forbidden}: {refused}"
        );
    }
    app_pool.close().await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn requests_keep_succeeding_while_the_password_rotates(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 20, 0).await;
    let user = application_login(&pool, "first-password").await;
    let options = options_as(&pool, &user).await;
    let source = SharedPassword::new("first-password");
    let rotating = Database::new(
        PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options.clone()),
    )
    .with_rotating_password(Arc::new(source.clone()), Duration::from_secs(3_600));
    // The same role with the password it had at cold start and no source to ask again.
    let fixed = Database::from(
        PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options.password("first-password")),
    );
    let (rotating_router, fixed_router) = (router_with(rotating), router_with(fixed));
    for router in [&rotating_router, &fixed_router] {
        let response = complete(router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }

    // The secret rotates: the role's password changes and the source hands out the new one.
    // Open sessions would survive a password change; the proxy recycling them does not.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE {user} PASSWORD 'second-password'"
    )))
    .execute(&pool)
    .await
    .unwrap();
    source.set("second-password");
    end_sessions_of(&pool, &user).await;

    // The first new connection is refused with the old password (the refresh interval is an
    // hour), which makes the handle ask its source again and retry: every request succeeds.
    // The handle without a source fails for good.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = complete(
            &rotating_router,
            &s.seat.token,
            s.batch_id,
            s.group_a.body(1),
            &[],
        )
        .await;
        statuses.push(response.status.as_u16());
    }
    assert_eq!(statuses, [200; 5]);
    let stale = complete(
        &fixed_router,
        &s.seat.token,
        s.batch_id,
        s.group_a.body(1),
        &[],
    )
    .await;
    assert_eq!(
        stale.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        stale.text
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_rotating_password_is_asked_for_before_every_new_connection_when_due(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 20, 0).await;
    let user = application_login(&pool, "first-password").await;
    let source = SharedPassword::new("first-password");
    let db = Database::new(
        PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options_as(&pool, &user).await),
    )
    .with_rotating_password(Arc::new(source.clone()), Duration::ZERO);
    let router = router_with(db);

    for round in 0..3 {
        let password = format!("password-{round}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER ROLE {user} PASSWORD '{password}'"
        )))
        .execute(&pool)
        .await
        .unwrap();
        source.set(&password);
        end_sessions_of(&pool, &user).await;
        for _ in 0..3 {
            let response =
                complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
            assert_eq!(
                response.status,
                StatusCode::OK,
                "round {round}: {}",
                response.text
            );
        }
    }
}

/// The test cluster's TLS endpoint, as `user` with `password`, with `sslmode` and the CA
/// bundle as given.
fn tls_config(user: &str, password: &str, host: &str, query: &str) -> DbConfig {
    let base = std::env::var("KEYSTONE_PG_TLS_URL").expect("KEYSTONE_PG_TLS_URL: run tests/run.sh");
    let port = base.rsplit(':').next().unwrap().to_owned();
    let url = format!("postgres://{user}:{password}@{host}:{port}/postgres?{query}");
    DbConfig::from_lookup(&|name: &str| (name == "DATABASE_URL").then(|| url.clone())).unwrap()
}

async fn tls_connects(config: &DbConfig) -> Result<(), String> {
    let mut conn = config
        .connect_options()
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    assert!(ssl, "the session is encrypted");
    Ok(())
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn connections_verify_the_server_certificate_and_its_name(pool: PgPool) {
    let user = application_login(&pool, "tls-password").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "GRANT CONNECT ON DATABASE postgres TO {user}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let ca = std::env::var("KEYSTONE_PG_TLS_CA").expect("KEYSTONE_PG_TLS_CA: run tests/run.sh");

    // The server's own CA and the name on its certificate: connected.
    let trusted = tls_config(
        &user,
        "tls-password",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    tls_connects(&trusted).await.unwrap();

    // The CAs shipped with the functions (RDS and RDS Proxy) do not vouch for this server.
    let shipped = tls_config(&user, "tls-password", "localhost", "sslmode=verify-full");
    let refused = tls_connects(&shipped).await.unwrap_err();
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");

    // The right CA, but an address the certificate does not name.
    let wrong_name = tls_config(
        &user,
        "tls-password",
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let refused = tls_connects(&wrong_name).await.unwrap_err();
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");

    // What the code used before: `require` encrypts and accepts any certificate.
    let unverified = tls_config(&user, "tls-password", "127.0.0.1", "sslmode=require");
    tls_connects(&unverified).await.unwrap();
}

/// db-migrate's path: the URL carries no password (the master secret rotates), the first thing
/// the handle does is take a dedicated connection for the migrations.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn migrations_log_in_with_the_rotating_password(pool: PgPool) {
    let owner = format!("owner_{}", rand::random::<u32>());
    let fresh = format!("rotating_migrate_{}", rand::random::<u32>());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {owner} LOGIN CREATEROLE PASSWORD 'master-1'; \
         GRANT keystone_app TO {owner} WITH ADMIN OPTION"
    )))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {fresh} OWNER {owner}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let options = options_as(&pool, &owner).await.database(&fresh);
    let source = SharedPassword::new("master-1");
    let db = Database::new(PgPoolOptions::new().connect_lazy_with(options))
        .with_rotating_password(Arc::new(source.clone()), Duration::from_secs(3_600));

    let applied = keystone_store::apply_migrations(&db, None).await.unwrap();
    assert_eq!(applied.len(), keystone_store::MIGRATOR.iter().count());

    // RDS rotates the master password: the next run still logs in.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE {owner} PASSWORD 'master-2'"
    )))
    .execute(&pool)
    .await
    .unwrap();
    source.set("master-2");
    // As db-migrate runs: the migrations, then the configured limits on the application role,
    // which the master user may alter.
    let limits = TransactionLimits::default();
    assert_eq!(
        keystone_store::apply_migrations(&db, Some((keystone_store::APPLICATION_ROLE, limits)))
            .await
            .unwrap(),
        applied
    );

    db.pool().close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {fresh} WITH (FORCE)"
    )))
    .execute(&pool)
    .await
    .unwrap();
}
