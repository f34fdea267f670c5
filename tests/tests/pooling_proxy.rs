//! The production database path (SPEC §6, §9): every function reaches PostgreSQL through a
//! transaction-pooling proxy. Debian's PgBouncer, started by tests/run.sh in transaction mode and
//! refusing every startup parameter but `extra_float_digits`, stands in for RDS Proxy; fixtures
//! are written to the database directly, everything the functions do goes through the proxy.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use keystone_queue::relay;
use keystone_queue::relay::RELAY_MAX_ROUNDS;
use keystone_store::Database;
use keystone_store::config::DbConfig;
use keystone_tests::notify::*;
use keystone_tests::round_trips::{RoundTripCounter, Upstream, turns_of_completion};
use keystone_tests::*;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// `postgres://…@pgbouncer/` as tests/run.sh exported it.
#[track_caller]
fn proxy_base() -> String {
    std::env::var("KEYSTONE_PGBOUNCER_URL").expect(
        "KEYSTONE_PGBOUNCER_URL is unset: run the tests through tests/run.sh, which starts PgBouncer",
    )
}

async fn database_name(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The handle the functions build from `DATABASE_URL`, pointed at the proxy as a deployment
/// configured for PgBouncer would be.
async fn through_proxy(pool: &PgPool) -> Database {
    let url = format!(
        "{}/{}?statement-cache-capacity=0",
        proxy_base(),
        database_name(pool).await
    );
    let config = DbConfig::from_lookup(&|name: &str| match name {
        "DATABASE_URL" => Some(url.clone()),
        "DB_MAX_CONNECTIONS" => Some("8".to_owned()),
        _ => None,
    })
    .unwrap();
    assert!(config.statement_cache_disabled());
    config.connect().await.unwrap()
}

/// Ends the proxy's server connections to this test's database, which it would otherwise keep
/// open past the test and so stop sqlx from dropping the database.
async fn release_proxy_connections(pool: &PgPool, db: Database) {
    db.pool().close().await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn login(router: &axum::Router, account: &str, password: &str) -> String {
    let response = send(
        router,
        Method::POST,
        "/api/v1/auth/login",
        None,
        &[],
        json!({"account": account, "password": password}).to_string(),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.body["access_token"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_function_works_through_a_transaction_pooling_proxy(pool: PgPool) {
    // An order of target 12; the collector's batch holds 10 tasks.
    let s = Scenario::new(&pool, 12, 10, 0).await;
    // bcrypt of "keystone-demo", as Keystone stores collector passwords.
    let hash = bcrypt::hash("keystone-demo", 4).unwrap();
    sqlx::query("UPDATE data_collectors SET password_hash = $2 WHERE id = $1")
        .bind(s.seat.collector_id)
        .bind(&hash)
        .execute(&pool)
        .await
        .unwrap();
    let operator_id: String =
        sqlx::query_scalar("SELECT operator_id FROM data_collectors WHERE id = $1")
            .bind(s.seat.collector_id)
            .fetch_one(&pool)
            .await
            .unwrap();

    let db = through_proxy(&pool).await;
    let queue = TestQueue::create("proxy", 5, 30).await;
    let recorder = FakeRecorder::start().await;
    // No publishing at commit: the relay, through the proxy too, must send every row.
    let router = router_with(db.clone());

    // Log in, as a collector and as the admin.
    let collector = login(&router, &operator_id, "keystone-demo").await;
    let admin = login(&router, ADMIN_USERNAME, ADMIN_PASSWORD).await;

    // Who am I, and what does my phone show?
    let me = send(
        &router,
        Method::GET,
        "/api/v1/auth/me",
        Some(&collector),
        &[],
        "",
    )
    .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(
        me.body["collector_id"],
        json!(s.seat.collector_id.to_string())
    );
    let mine = send(
        &router,
        Method::GET,
        "/api/v1/me/batches",
        Some(&collector),
        &[],
        "",
    )
    .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);

    // Admin dispatch: two more tasks in the collector's batch, and a new batch for them.
    let adjusted = send(
        &router,
        Method::POST,
        &adjust_path(s.batch_id),
        Some(&admin),
        &[],
        json!({"task_groups": [s.group_a.entry(11)]}).to_string(),
    )
    .await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.text);
    let created = send(
        &router,
        Method::POST,
        "/api/v1/batches",
        Some(&admin),
        &[],
        json!({"order_id": s.order_id, "workstation_id": s.seat.workstation_id,
               "task_groups": [s.group_a.entry(1)]})
        .to_string(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    // An Axon workstation with a ready and an in-progress task of the order, which
    // finalization must cancel on its device.
    let (_, axon_batch) = s
        .add_axon_batch("AX-1", "axon-proxy", &[("ready", 1), ("in_progress", 1)])
        .await;

    // Eleven completions at once, several client connections through the proxy at a time:
    // the last one reaches the target of 12 only with the new batch's task, so first the
    // collector's batch, then the new one.
    let requests = (0..11).map(|i| {
        let (router, token, body) = (router.clone(), collector.clone(), s.group_a.body(1));
        let key = format!("proxy-{i}");
        tokio::spawn(async move {
            complete(
                &router,
                &token,
                s.batch_id,
                body,
                &[("idempotency-key", key.as_str())],
            )
            .await
        })
    });
    for request in requests {
        let response = request.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    let replay = complete(
        &router,
        &collector,
        s.batch_id,
        s.group_a.body(1),
        &[("idempotency-key", "proxy-0")],
    )
    .await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.text);
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    let new_batch: i64 = created.body["batch"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let last = complete(&router, &collector, new_batch, s.group_a.body(1), &[]).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.text);
    assert_eq!(last.body["order"]["status"], "completed", "{}", last.text);
    assert_eq!(batch_status(&pool, axon_batch).await, "completed");

    // The admin finalize is now a no-op.
    let finalize = send(
        &router,
        Method::POST,
        &finalize_path(s.order_id),
        Some(&admin),
        &[],
        "",
    )
    .await;
    assert_eq!(finalize.status, StatusCode::OK, "{}", finalize.text);
    assert_eq!(finalize.body["finalized"], json!(false));

    // The relay and the consumer, through the proxy.
    let publisher = Arc::new(queue.publisher_on(db.clone()));
    let outcome = relay(&publisher, 100, RELAY_MAX_ROUNDS).await.unwrap();
    assert_eq!(outcome.published, 2, "{outcome:?}");
    let messages = queue.drain(&queue.pair.url).await;
    assert_eq!(messages.len(), 2);
    let response = recorder
        .notifier_on(db.clone())
        .handle(sqs_event(messages.iter().map(as_lambda_record).collect()))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let mut actions: Vec<(String, String)> = recorder
        .calls()
        .into_iter()
        .map(|c| (c.device_id, c.action))
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            ("axon-proxy".to_owned(), "cancel".to_owned()),
            ("axon-proxy".to_owned(), "clear".to_owned())
        ]
    );
    let delivered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM recorder_deliveries WHERE status = 'delivered'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(delivered, 2);
    release_proxy_connections(&pool, db).await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_completion_through_the_proxy_is_seven_round_trips_whatever_the_quantity(pool: PgPool) {
    // Counted between the functions and the proxy, where each turn pays the hop. Unnamed
    // statements cost two turns each (sqlx parses and describes, then binds and executes).
    let s = Scenario::new(&pool, 10_000, 500, 0).await;
    let relay = RoundTripCounter::start(Upstream::of_url(&proxy_base())).await;
    let url = format!(
        "postgres://postgres@{}/{}?statement-cache-capacity=0",
        relay.addr(),
        database_name(&pool).await
    );
    let db = DbConfig::from_lookup(&|name: &str| (name == "DATABASE_URL").then(|| url.clone()))
        .unwrap()
        .lazy_database()
        .unwrap();
    let router = router_with(db.clone());
    // The first one connects.
    turns_of_completion(&relay, &router, &s, 1).await;
    for quantity in [1, 40, 1] {
        let turns = turns_of_completion(&relay, &router, &s, quantity).await;
        // BEGIN; seat and locks (2); the completion (2); COMMIT; the test after the answer.
        assert_eq!(turns, 7, "round trips of a completion of {quantity}");
    }
    release_proxy_connections(&pool, db).await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn migrations_apply_through_the_proxy_once_however_many_run_at_once(pool: PgPool) {
    let fresh = format!("proxy_migrate_{}", rand::random::<u32>());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {fresh}")))
        .execute(&pool)
        .await
        .unwrap();
    let url = format!("{}/{fresh}?statement-cache-capacity=0", proxy_base());
    let config =
        DbConfig::from_lookup(&|name: &str| (name == "DATABASE_URL").then(|| url.clone())).unwrap();
    let db = config.connect().await.unwrap();

    let runs = (0..3).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { keystone_store::apply_migrations(&db, None).await })
    });
    let mut applied = Vec::new();
    for run in runs {
        applied.push(run.await.unwrap().unwrap());
    }
    // Twice more, later: the named statements of the first runs are gone from the proxy's
    // server connections, so nothing collides with them.
    applied.push(keystone_store::apply_migrations(&db, None).await.unwrap());
    applied.push(keystone_store::apply_migrations(&db, None).await.unwrap());

    let expected: Vec<i64> = keystone_store::MIGRATOR.iter().map(|m| m.version).collect();
    for versions in applied {
        assert_eq!(versions, expected);
    }
    db.pool().close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {fresh} WITH (FORCE)"
    )))
    .execute(&pool)
    .await
    .unwrap();
}

/// Why the code sends statements unnamed through PgBouncer: sqlx with its statement cache off
/// still prepares `sqlx_s_1`, `sqlx_s_2`, … under names and never closes them, so a second client
/// connection's `sqlx_s_1` meets the first one's on the proxy's server connection. If this ever
/// passes, the workaround can go.
#[tokio::test]
async fn sqlx_named_statements_collide_through_pgbouncer() {
    let options: PgConnectOptions = format!("{}/postgres", proxy_base())
        .parse::<PgConnectOptions>()
        .unwrap()
        .statement_cache_capacity(0);
    let mut first = PgConnection::connect_with(&options).await.unwrap();
    let mut second = PgConnection::connect_with(&options).await.unwrap();
    let mut failures = Vec::new();
    for _ in 0..5 {
        for conn in [&mut first, &mut second] {
            if let Err(e) = sqlx::query_scalar::<_, i32>("SELECT $1::int")
                .bind(1)
                .fetch_one(&mut *conn)
                .await
            {
                failures.push(e.to_string());
            }
        }
    }
    assert!(
        failures.iter().any(|e| e.contains("prepared statement")),
        "{failures:?}"
    );

    // The same statements unnamed, inside transactions, as the store sends them: no failure.
    for conn in [&mut first, &mut second] {
        for _ in 0..5 {
            let mut tx = conn.begin().await.unwrap();
            let one: i32 = sqlx::query_scalar("SELECT $1::int")
                .bind(1)
                .persistent(false)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(one, 1);
        }
    }
}
