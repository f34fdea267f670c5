//! What sending statements unnamed costs (docs/deploy.md): `complete-tasks` (quantity 1) in a
//! loop, straight to PostgreSQL with sqlx's named, cached statements, straight with unnamed ones,
//! and through PgBouncer (transaction pooling) with unnamed ones. Not a test: it prints figures.
//!
//! `bash tests/bench-statement-cache.sh` runs it against the test command's PostgreSQL and
//! PgBouncer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use keystone_store::Database;
use keystone_tests::*;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

const REQUESTS: usize = 500;

async fn measure(label: &str, pool: &PgPool, db: Database) {
    let s = Scenario::new(pool, 100_000, REQUESTS as i64 + 50, 0).await;
    let router = router_with(db);
    for _ in 0..20 {
        complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
    }
    let mut latencies = Vec::with_capacity(REQUESTS);
    let started = Instant::now();
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let response = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
        latencies.push(t.elapsed());
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    let total = started.elapsed();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "| {label} | {REQUESTS} | {:.0} | {:.2} ms | {:.2} ms |",
        REQUESTS as f64 / total.as_secs_f64(),
        ms(pct(50)),
        ms(pct(99)),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

#[tokio::main]
async fn main() {
    let direct_url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let proxy_base = std::env::var("KEYSTONE_PGBOUNCER_URL").expect("KEYSTONE_PGBOUNCER_URL");
    let admin = PgPool::connect(&direct_url).await.unwrap();
    let name = format!("bench_statements_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let options: sqlx::postgres::PgConnectOptions = direct_url.parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.database(&name))
        .await
        .unwrap();
    keystone_store::MIGRATOR.run(&pool).await.unwrap();

    println!("| path | requests | req/s | p50 | p99 |\n|---|---|---|---|---|");
    // Named statements first: unnamed mode is process-wide once switched on.
    measure(
        "direct, named cached statements",
        &pool,
        Database::from(pool.clone()),
    )
    .await;
    let proxied = PgPoolOptions::new()
        .max_connections(4)
        .connect(&format!("{proxy_base}/{name}?statement-cache-capacity=0"))
        .await
        .unwrap();
    let unnamed_direct = Database::from(pool.clone()).with_unnamed_statements();
    measure("direct, unnamed statements", &pool, unnamed_direct).await;
    measure(
        "PgBouncer 1.18 (transaction pooling), unnamed statements",
        &pool,
        Database::from(proxied.clone()).with_unnamed_statements(),
    )
    .await;

    proxied.close().await;
    pool.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}
