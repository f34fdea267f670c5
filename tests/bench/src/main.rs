//! `keystone-bench`: the performance bench of issue 11 (see docs/performance.md).
//!
//! One command — `cargo run --release -p keystone-bench` — starts a private PostgreSQL from the
//! system's binaries (or uses the server `DATABASE_URL` points at: it creates and drops its own
//! databases there), serves every route of the local stack on a loopback port, creates its
//! data through the API (seats and orders by SQL: no endpoint creates them), and measures:
//!
//! 1. complete-tasks (quantity 1) at 1, 8 and 32 clients, each on its own order and batch,
//!    beside `pgbench` tpcb-like at the same client count on the same server;
//! 2. one client's latency against the size of its order (small; big in one batch; big in
//!    many batches, half done);
//! 3. a hot order: 32 clients on one order of 8 batches;
//! 4. adjust-batch, create-batch, finalize-order, the progress views and my-batches on big
//!    orders against small ones;
//! 5. the admin console's lists (orders, batches, a batch's tasks, stations) on a large
//!    dataset (1 000 console orders of 10 batches of 10 tasks, on top of everything above)
//!    against the same calls on a small one (10 such orders, measured first);
//! 6. the production path: complete-tasks straight to PostgreSQL beside the same requests
//!    through PgBouncer in transaction pooling (the test command's, or one it starts itself),
//!    each handle built as the functions build theirs.
//!
//! It prints one Markdown table. It is not a test: nothing is asserted on wall time, but any
//! answer outside 2xx is counted and printed, and a run with one fails. `--smoke` runs a
//! seconds-long version with tiny sizes (the test command runs it); `--seconds N` sets the
//! duration of each timed load (default 5); `--production-path` measures part 6 alone.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keystone_auth::{JwtKeys, Principal};
use keystone_http::AppState;
use keystone_local::embedded_pg::EmbeddedPostgres;
use keystone_store::Database;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

mod bouncer;

use bouncer::Bouncer;

type AnyError = Box<dyn Error + Send + Sync>;

const JWT_SECRET: &str = "keystone-bench-secret-0123456789";
const BENCH_DB: &str = "keystone_bench";
const PGBENCH_DB: &str = "keystone_pgbench";
/// Most tasks one adjust-batch request may add (SPEC §5.2), and one create-batch (§5.3).
const ADJUST_STEP: i64 = 10_000;
const CREATE_MAX: i64 = 1_000;

/// What one run measures, at full size or as a smoke run.
#[derive(Debug, Clone)]
struct Sizes {
    seconds: f64,
    client_counts: Vec<usize>,
    tasks_per_client: i64,
    small_order: i64,
    big_order: i64,
    big_order_batches: i64,
    completions_per_client: usize,
    hot_clients: usize,
    hot_batches: usize,
    hot_tasks_per_batch: i64,
    admin_samples: usize,
    finalize_samples: usize,
    my_batches_open: i64,
    my_batches_tasks: i64,
    pgbench_scale: u32,
    /// Console orders measured first (small dataset), and in all (large dataset); each with
    /// its own station and `console_batches` batches of `console_tasks` tasks.
    console_small: usize,
    console_large: usize,
    console_batches: usize,
    console_tasks: i64,
    /// Client counts of the direct-versus-proxy comparison.
    proxy_clients: Vec<usize>,
    /// Measure part 6 alone (`--production-path`).
    production_path_only: bool,
}

impl Sizes {
    fn full(seconds: f64) -> Self {
        Self {
            seconds,
            client_counts: vec![1, 8, 32],
            // One client completes about 1 000 a second here; 2 000 a second leaves room.
            #[allow(clippy::cast_possible_truncation)]
            tasks_per_client: 20_000_i64.max((seconds * 2_000.0).ceil() as i64),
            small_order: 1_000,
            big_order: 100_000,
            big_order_batches: 100,
            completions_per_client: 500,
            hot_clients: 32,
            hot_batches: 8,
            hot_tasks_per_batch: 10_000,
            admin_samples: 50,
            finalize_samples: 3,
            my_batches_open: 50,
            my_batches_tasks: 1_000,
            pgbench_scale: 32,
            console_small: 10,
            console_large: 1_000,
            console_batches: 10,
            console_tasks: 10,
            proxy_clients: vec![1, 8],
            production_path_only: false,
        }
    }

    fn smoke() -> Self {
        Self {
            seconds: 0.3,
            client_counts: vec![1, 2],
            tasks_per_client: 1_000,
            small_order: 20,
            big_order: 2_000,
            big_order_batches: 4,
            completions_per_client: 5,
            hot_clients: 4,
            hot_batches: 2,
            hot_tasks_per_batch: 400,
            admin_samples: 3,
            finalize_samples: 1,
            my_batches_open: 3,
            my_batches_tasks: 10,
            pgbench_scale: 1,
            console_small: 10,
            console_large: 20,
            console_batches: 2,
            console_tasks: 2,
            proxy_clients: vec![1, 2],
            production_path_only: false,
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(5.0);
    let mut sizes = if smoke {
        Sizes::smoke()
    } else {
        Sizes::full(seconds)
    };
    sizes.production_path_only = args.iter().any(|a| a == "--production-path");
    match run(sizes).await {
        Ok(0) => std::process::ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("keystone-bench: {failures} answers were not 2xx");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("keystone-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    )
}

/// The PostgreSQL server the bench uses: a private one, or the one `DATABASE_URL` names.
struct Server {
    cluster: Option<EmbeddedPostgres>,
    admin_url: String,
    pgbench: PathBuf,
}

impl Server {
    async fn start() -> Result<Self, AnyError> {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return Ok(Self {
                cluster: None,
                admin_url: url,
                pgbench: find_pgbench(None).ok_or("pgbench not found")?,
            });
        }
        let cluster =
            EmbeddedPostgres::start(&target_dir().join("keystone-bench/postgres")).await?;
        let pgbench = find_pgbench(Some(cluster.bindir())).ok_or("pgbench not found")?;
        Ok(Self {
            admin_url: cluster.admin_url.clone(),
            cluster: Some(cluster),
            pgbench,
        })
    }

    /// The URL of database `name` on the same server as the admin URL.
    fn url(&self, name: &str) -> Result<String, AnyError> {
        let mut url = reqwest::Url::parse(&self.admin_url)?;
        url.set_path(&format!("/{name}"));
        Ok(url.to_string())
    }

    async fn recreate(&self, name: &str) -> Result<(), AnyError> {
        let admin = PgPool::connect(&self.admin_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await?;
        admin.close().await;
        Ok(())
    }

    async fn stop(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.stop().await;
        }
    }
}

fn find_pgbench(bindir: Option<&Path>) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = bindir.map(|d| d.join("pgbench")).into_iter().collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin/pgbench"))
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev());
    }
    candidates.push(PathBuf::from("/usr/bin/pgbench"));
    candidates.into_iter().find(|p| p.exists())
}

/// Latencies of one measured load.
#[derive(Debug, Default, Clone)]
struct Stats {
    latencies: Vec<Duration>,
    failures: usize,
    elapsed: Duration,
}

impl Stats {
    fn merge(&mut self, other: Self) {
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
    }

    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
        sorted[index]
    }

    fn rate(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let count = self.latencies.len() as f64;
        count / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1_000.0)
}

/// The API under test and the handles the bench needs around it.
struct Bench {
    base: String,
    http: reqwest::Client,
    pool: PgPool,
    keys: JwtKeys,
    admin: String,
    world: World,
    failures: usize,
    /// Orders this run created, for unique names.
    orders_created: usize,
}

/// The fixed rows every order and seat hangs off.
#[derive(Debug, Clone, Copy)]
struct World {
    organization: i64,
    scene: i64,
    sop: i64,
    subscene: i64,
}

/// A collector at an external-device workstation.
#[derive(Debug, Clone)]
struct Seat {
    workstation: i64,
    token: String,
}

impl Bench {
    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(Duration, Value), AnyError> {
        let started = Instant::now();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let took = started.elapsed();
        if !status.is_success() {
            self.failures += 1;
            eprintln!("{path}: {status} {body}");
        }
        Ok((took, body))
    }

    async fn admin_call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(Duration, Value), AnyError> {
        let token = self.admin.clone();
        self.send(method, path, &token, body).await
    }

    /// An order of `target` tasks, created as the admin console does (names are unique per
    /// organization).
    async fn order(&mut self, target: i64) -> Result<i64, AnyError> {
        self.orders_created += 1;
        let body = json!({
            "organization_id": self.world.organization, "scene_id": self.world.scene,
            "name": format!("bench {}", self.orders_created), "target_count": target,
        });
        let (_, order) = self
            .admin_call(reqwest::Method::POST, "/api/v1/orders", Some(body))
            .await?;
        Ok(order["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("no order created: {order}"))?)
    }

    async fn seat(&self) -> Result<Seat, AnyError> {
        let (collector, workstation): (i64, i64) = sqlx::query_as(
            "WITH rt AS (SELECT id FROM robot_types WHERE name = 'BenchGloves'), \
                  r AS (INSERT INTO robots (robot_type_id, device_id, factory_id) \
                        SELECT id, 'bench-' || md5(random()::text), 1 FROM rt RETURNING id), \
                  c AS (INSERT INTO data_collectors (name, operator_id) \
                        VALUES ('bench', 'B' || md5(random()::text)) RETURNING id), \
                  w AS (INSERT INTO workstations (robot_id, data_collector_id, organization_id, \
                                                  factory_id, name, status) \
                        SELECT r.id, c.id, $1, 1, 'bench', 'inactive' FROM r, c RETURNING id, data_collector_id) \
             SELECT data_collector_id, id FROM w",
        )
        .bind(self.world.organization)
        .fetch_one(&self.pool)
        .await?;
        let token = self.keys.issue(
            &Principal::Collector {
                collector_id: collector,
                operator_id: format!("B{collector}"),
                issued_at: None,
            },
            chrono::Duration::hours(12),
        )?;
        Ok(Seat { workstation, token })
    }

    /// A batch of `tasks` pending tasks of the one task group, made through the API: one
    /// create-batch, then adjust-batch in steps of at most 10 000.
    async fn batch(&mut self, order: i64, workstation: i64, tasks: i64) -> Result<i64, AnyError> {
        let world = self.world;
        let group = |quantity: i64| json!({"sop_id": world.sop, "subscene_id": world.subscene, "quantity": quantity});
        let first = tasks.min(CREATE_MAX);
        let (_, created) = self
            .admin_call(
                reqwest::Method::POST,
                "/api/v1/batches",
                Some(json!({"order_id": order, "workstation_id": workstation, "task_groups": [group(first)]})),
            )
            .await?;
        let batch: i64 = created["batch"]["id"]
            .as_str()
            .ok_or_else(|| format!("create-batch answered {created}"))?
            .parse()?;
        let mut live = first;
        while live < tasks {
            live = (live + ADJUST_STEP).min(tasks);
            self.admin_call(
                reqwest::Method::POST,
                &format!("/api/v1/batches/{batch}/tasks"),
                Some(json!({"task_groups": [group(live)]})),
            )
            .await?;
        }
        Ok(batch)
    }

    fn complete_body(&self, quantity: i64) -> Value {
        json!({"sop_id": self.world.sop, "subscene_id": self.world.subscene, "quantity": quantity})
    }

    async fn complete(
        &mut self,
        seat: &Seat,
        batch: i64,
        quantity: i64,
    ) -> Result<Duration, AnyError> {
        let body = self.complete_body(quantity);
        let token = seat.token.clone();
        Ok(self
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/batches/{batch}/complete-tasks"),
                &token,
                Some(body),
            )
            .await?
            .0)
    }

    /// `clients` collectors completing one task per request as fast as they can, each on its
    /// own (seat, batch): for `duration`, or `count` requests each.
    async fn load(
        &self,
        work: Vec<(Seat, i64)>,
        duration: Option<Duration>,
        count: usize,
    ) -> Stats {
        self.load_at(&self.base, work, duration, count).await
    }

    /// [`Bench::load`] against the API served at `base`.
    async fn load_at(
        &self,
        base: &str,
        work: Vec<(Seat, i64)>,
        duration: Option<Duration>,
        count: usize,
    ) -> Stats {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut handles = Vec::new();
        for (seat, batch) in work {
            let (http, url, body, stop) = (
                self.http.clone(),
                format!("{base}/api/v1/batches/{batch}/complete-tasks"),
                self.complete_body(1).to_string(),
                stop.clone(),
            );
            handles.push(tokio::spawn(async move {
                let mut stats = Stats::default();
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) && (duration.is_some() || sent < count) {
                    let began = Instant::now();
                    let response = http
                        .post(&url)
                        .bearer_auth(&seat.token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let ok = match response {
                        Ok(response) => {
                            let status = response.status();
                            let text = response.text().await.unwrap_or_default();
                            if !status.is_success() {
                                eprintln!("complete-tasks: {status} {text}");
                            }
                            status.is_success()
                        }
                        Err(e) => {
                            eprintln!("complete-tasks: {e}");
                            false
                        }
                    };
                    stats.latencies.push(began.elapsed());
                    if !ok {
                        stats.failures += 1;
                    }
                    sent += 1;
                }
                stats
            }));
        }
        if let Some(duration) = duration {
            tokio::time::sleep(duration).await;
            stop.store(true, Ordering::Relaxed);
        }
        let mut total = Stats::default();
        for handle in handles {
            if let Ok(stats) = handle.await {
                total.merge(stats);
            }
        }
        total.elapsed = started.elapsed();
        total
    }
}

/// CPU time used so far by this process (the HTTP client and the API server) and by every
/// PostgreSQL process on the machine (live ones, plus what the postmaster collected from
/// exited backends), read from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTime {
    bench: f64,
    postgres: f64,
    children: f64,
    pgbouncer: f64,
}

impl CpuTime {
    fn now() -> Self {
        let ticks = 100.0;
        let fields = |stat: &str| -> Option<Vec<f64>> {
            let rest = stat.rsplit_once(')')?.1;
            Some(
                rest.split_whitespace()
                    .map(|f| f.parse::<f64>().unwrap_or(0.0))
                    .collect(),
            )
        };
        let own = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| fields(&s))
            .unwrap_or_default();
        // After `)`: state is index 0, utime 11, stime 12, cutime 13, cstime 14.
        let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(0.0);
        let (mut postgres, mut pgbouncer) = (0.0, 0.0);
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.filter_map(Result::ok) {
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                let Some(v) = fields(&stat) else {
                    continue;
                };
                let used = at(&v, 11) + at(&v, 12) + at(&v, 13) + at(&v, 14);
                if stat.contains("(postgres)") {
                    postgres += used;
                } else if stat.contains("(pgbouncer)") {
                    pgbouncer += used;
                }
            }
        }
        Self {
            bench: (at(&own, 11) + at(&own, 12)) / ticks,
            postgres: postgres / ticks,
            children: (at(&own, 13) + at(&own, 14)) / ticks,
            pgbouncer: pgbouncer / ticks,
        }
    }

    fn since(self, start: Self) -> Self {
        Self {
            bench: self.bench - start.bench,
            postgres: self.postgres - start.postgres,
            children: self.children - start.children,
            pgbouncer: self.pgbouncer - start.pgbouncer,
        }
    }
}

/// `pgbench` tpcb-like on the same server: transactions per second at `clients`.
async fn pgbench_tps(
    server: &Server,
    url: &str,
    clients: usize,
    seconds: f64,
) -> Result<f64, AnyError> {
    let output = tokio::process::Command::new(&server.pgbench)
        .args([
            "-n",
            "-b",
            "tpcb-like",
            "-c",
            &clients.to_string(),
            "-j",
            &clients.to_string(),
        ])
        .args(["-T", &format!("{}", seconds.ceil().max(1.0))])
        .arg(url)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| {
            line.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .ok_or_else(|| {
            format!(
                "pgbench printed no tps: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into()
        })
}

async fn pgbench_init(server: &Server, url: &str, scale: u32) -> Result<(), AnyError> {
    let status = tokio::process::Command::new(&server.pgbench)
        .args(["-i", "-q", "-s", &scale.to_string()])
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await?;
    if !status.success() {
        return Err("pgbench -i failed".into());
    }
    Ok(())
}

/// The printed table, one row at a time as figures come in.
struct Report;

impl Report {
    fn header() -> Self {
        println!("| measurement | result | p50 | p99 |");
        println!("|---|---|---|---|");
        Self
    }

    fn row(&self, what: impl std::fmt::Display, result: impl std::fmt::Display, stats: &Stats) {
        println!(
            "| {what} | {result} | {} | {} |",
            ms(stats.quantile(0.5)),
            ms(stats.quantile(0.99))
        );
    }

    /// A call on a big order against the same call on a small one: the ratio of the p50s.
    fn versus(&self, what: impl std::fmt::Display, big: &Stats, small: &Stats) {
        let ratio = big.quantile(0.5).as_secs_f64() / small.quantile(0.5).as_secs_f64().max(1e-9);
        self.row(
            what,
            format!("×{ratio:.2} (small: p50 {})", ms(small.quantile(0.5))),
            big,
        );
    }
}

async fn run(sizes: Sizes) -> Result<usize, AnyError> {
    let server = Server::start().await?;
    let result = measure(&server, &sizes).await;
    server.stop().await;
    result
}

#[allow(clippy::too_many_lines)]
async fn measure(server: &Server, sizes: &Sizes) -> Result<usize, AnyError> {
    server.recreate(BENCH_DB).await?;
    server.recreate(PGBENCH_DB).await?;
    let url = server.url(BENCH_DB)?;
    let pgbench_url = server.url(PGBENCH_DB)?;
    let max_clients = sizes
        .client_counts
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(sizes.hot_clients);
    // Named as the functions' sessions are, so the test command's pinning check reads what
    // the bench sends too.
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(max_clients + 8)?)
        .connect_with(
            url.parse::<sqlx::postgres::PgConnectOptions>()?
                .application_name(keystone_store::APPLICATION_NAME),
        )
        .await?;
    keystone_store::apply_migrations(&Database::new(pool.clone()), None).await?;
    let keys = JwtKeys::new(&SecretString::from(JWT_SECRET), None);
    // The API's own pool, built as the functions build theirs; `pool` is the bench's.
    let base = serve(function_database(&url, max_clients + 8)?, &keys).await?;

    let world: (i64, i64, i64, i64) = sqlx::query_as(
        "WITH o AS (INSERT INTO organizations (name, slug) VALUES ('Bench', 'bench') RETURNING id), \
              sc AS (INSERT INTO scenes (name, factory_id) VALUES ('bench', 1) RETURNING id), \
              ss AS (INSERT INTO subscenes (scene_id, name) SELECT id, 'bench' FROM sc RETURNING id), \
              sp AS (INSERT INTO sops (slug, version) VALUES ('bench', 'v1') RETURNING id), \
              rt AS (INSERT INTO robot_types (name, model, capabilities) \
                     VALUES ('BenchGloves', 'BG', '{\"requires_axon\": false}') RETURNING id) \
         SELECT o.id, sc.id, sp.id, ss.id FROM o, sc, sp, ss, rt",
    )
    .fetch_one(&pool)
    .await?;
    let admin = keys.issue(
        &Principal::Admin {
            operator_id: "admin".to_owned(),
        },
        chrono::Duration::hours(12),
    )?;
    let mut bench = Bench {
        base,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?,
        pool: pool.clone(),
        keys,
        admin,
        world: World {
            organization: world.0,
            scene: world.1,
            sop: world.2,
            subscene: world.3,
        },
        failures: 0,
        orders_created: 0,
    };
    if sizes.production_path_only {
        let report = Report::header();
        production_path(&mut bench, server, &report, sizes).await?;
        println!("\n{} answers outside 2xx in all", bench.failures);
        return Ok(bench.failures);
    }
    let seconds = Duration::from_secs_f64(sizes.seconds);
    // 5, small dataset: measured before anything else exists.
    let watched = console_dataset(&bench, 0, sizes).await?;
    settle(&pool).await?;
    let console_calls = console_calls(&watched);
    let mut console_small = Vec::new();
    for (_, path) in &console_calls {
        console_small.push(
            sample(&mut bench, sizes.admin_samples, |_| {
                (reqwest::Method::GET, path.clone(), None)
            })
            .await?,
        );
    }
    let report = Report::header();

    // 1. Throughput beside pgbench: each client on its own order and batch.
    pgbench_init(server, &pgbench_url, sizes.pgbench_scale).await?;
    // Every load gets seats of its own, each with more tasks than one client completes in the
    // load's time, so no batch runs out mid-measurement.
    let seats_needed: usize = sizes.client_counts.iter().sum();
    let mut own = Vec::new();
    for _ in 0..seats_needed {
        let seat = bench.seat().await?;
        let order = bench.order(sizes.tasks_per_client * 2).await?;
        let batch = bench
            .batch(order, seat.workstation, sizes.tasks_per_client)
            .await?;
        own.push((seat, batch));
    }
    settle(&pool).await?;
    let mut next_seat = 0;
    for &clients in &sizes.client_counts {
        let seats = own[next_seat..next_seat + clients].to_vec();
        next_seat += clients;
        let cpu = CpuTime::now();
        let stats = bench.load(seats, Some(seconds), 0).await;
        let api_cpu = CpuTime::now().since(cpu);
        bench.failures += stats.failures;
        let cpu = CpuTime::now();
        let tps = pgbench_tps(server, &pgbench_url, clients, sizes.seconds).await?;
        let pgbench_cpu = CpuTime::now().since(cpu);
        report.row(
            format!(
                "complete-tasks, {clients} client{}, own orders of {} tasks",
                if clients == 1 { "" } else { "s" },
                sizes.tasks_per_client
            ),
            format!(
                "{:.0} req/s (pgbench {tps:.0} tps, ratio {:.2})",
                stats.rate(),
                stats.rate() / tps
            ),
            &stats,
        );
        #[allow(clippy::cast_precision_loss)]
        let requests = stats.latencies.len().max(1) as f64;
        let transactions = (tps * sizes.seconds.ceil().max(1.0)).max(1.0);
        println!(
            "| … CPU per request, {clients} client{} | API process (client + server) {:.3} ms, \
             PostgreSQL {:.3} ms; per pgbench transaction: pgbench {:.3} ms, PostgreSQL {:.3} ms | | |",
            if clients == 1 { "" } else { "s" },
            api_cpu.bench * 1_000.0 / requests,
            api_cpu.postgres * 1_000.0 / requests,
            pgbench_cpu.children * 1_000.0 / transactions,
            pgbench_cpu.postgres * 1_000.0 / transactions,
        );
    }

    // 2. One client against the size of its order.
    let seat = bench.seat().await?;
    let small = bench.order(sizes.small_order * 2).await?;
    let small_batch = bench
        .batch(small, seat.workstation, sizes.small_order)
        .await?;
    let big = bench.order(sizes.big_order * 2).await?;
    let big_batch = bench.batch(big, seat.workstation, sizes.big_order).await?;
    let spread = bench.order(sizes.big_order * 2).await?;
    let per_batch = sizes.big_order / sizes.big_order_batches;
    let mut spread_batches = Vec::new();
    for _ in 0..sizes.big_order_batches {
        let batch = bench.batch(spread, seat.workstation, per_batch).await?;
        bench.complete(&seat, batch, per_batch / 2).await?;
        spread_batches.push(batch);
    }
    settle(&pool).await?;
    let mut baseline = Duration::ZERO;
    for (label, batch) in [
        (
            format!(
                "one client, order of {} tasks in 1 batch",
                sizes.small_order
            ),
            small_batch,
        ),
        (
            format!("one client, order of {} tasks in 1 batch", sizes.big_order),
            big_batch,
        ),
        (
            format!(
                "one client, order of {} tasks in {} batches, half done",
                sizes.big_order, sizes.big_order_batches
            ),
            spread_batches[0],
        ),
    ] {
        let stats = bench
            .load(
                vec![(seat.clone(), batch)],
                None,
                sizes.completions_per_client,
            )
            .await;
        bench.failures += stats.failures;
        let p50 = stats.quantile(0.5);
        if baseline.is_zero() {
            baseline = p50;
        }
        report.row(
            label,
            format!(
                "×{:.2} of the small order's p50",
                p50.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
            ),
            &stats,
        );
    }

    // 3. A hot order: every client on one order of a few batches.
    let hot = bench
        .order(sizes.hot_tasks_per_batch * i64::try_from(sizes.hot_batches)? * 2)
        .await?;
    let mut hot_work = Vec::new();
    let mut hot_seats = Vec::new();
    for _ in 0..sizes.hot_batches {
        let seat = bench.seat().await?;
        let batch = bench
            .batch(hot, seat.workstation, sizes.hot_tasks_per_batch)
            .await?;
        hot_seats.push((seat, batch));
    }
    for i in 0..sizes.hot_clients {
        hot_work.push(hot_seats[i % hot_seats.len()].clone());
    }
    settle(&pool).await?;
    let deadlocks_before = deadlocks(&pool).await?;
    let stats = bench.load(hot_work, Some(seconds), 0).await;
    bench.failures += stats.failures;
    report.row(
        format!(
            "hot order: {} clients, one order of {} batches",
            sizes.hot_clients, sizes.hot_batches
        ),
        format!(
            "{:.0} req/s, {} non-2xx, {} deadlocks",
            stats.rate(),
            stats.failures,
            deadlocks(&pool).await? - deadlocks_before
        ),
        &stats,
    );

    // 4. Admin endpoints, views and my-batches on big orders against small ones.
    settle(&pool).await?;
    let versus = format!("{} vs {} tasks", sizes.big_order, sizes.small_order);
    for (label, small_path, big_path) in [
        (
            "get-order",
            format!("/api/v1/orders/{small}"),
            format!("/api/v1/orders/{big}"),
        ),
        (
            "get-batch",
            format!("/api/v1/batches/{small_batch}"),
            format!("/api/v1/batches/{big_batch}"),
        ),
    ] {
        let small_stats = sample(&mut bench, sizes.admin_samples, |_| {
            (reqwest::Method::GET, small_path.clone(), None)
        })
        .await?;
        let big_stats = sample(&mut bench, sizes.admin_samples, |_| {
            (reqwest::Method::GET, big_path.clone(), None)
        })
        .await?;
        report.versus(format!("{label}, {versus}"), &big_stats, &small_stats);
    }
    let (sop, subscene) = (bench.world.sop, bench.world.subscene);
    let mut adjust = Vec::new();
    for (batch, size) in [
        (small_batch, sizes.small_order),
        (big_batch, sizes.big_order),
    ] {
        adjust.push(
            sample(&mut bench, sizes.admin_samples, |i| {
                (
                    reqwest::Method::POST,
                    format!("/api/v1/batches/{batch}/tasks"),
                    Some(
                        json!({"task_groups": [{"sop_id": sop, "subscene_id": subscene,
                                                 "quantity": size + i64::from(i % 2 == 0)}]}),
                    ),
                )
            })
            .await?,
        );
    }
    report.versus(
        format!("adjust-batch (+1/−1), {versus}"),
        &adjust[1],
        &adjust[0],
    );
    let mut create = Vec::new();
    for order in [small, big] {
        let workstation = seat.workstation;
        create.push(
            sample(&mut bench, sizes.admin_samples, |_| {
                (
                    reqwest::Method::POST,
                    "/api/v1/batches".to_owned(),
                    Some(json!({"order_id": order, "workstation_id": workstation,
                                "task_groups": [{"sop_id": sop, "subscene_id": subscene, "quantity": 1}]})),
                )
            })
            .await?,
        );
    }
    report.versus(
        format!("create-batch (1 task), {versus}"),
        &create[1],
        &create[0],
    );
    let mut finalize = [Stats::default(), Stats::default()];
    let runnable = sizes.small_order / 2;
    for (i, size) in [sizes.small_order, sizes.big_order].into_iter().enumerate() {
        for _ in 0..sizes.finalize_samples {
            // Both leave the same runnable tasks to cancel: only the order's size differs.
            let order = bench.order(size * 2).await?;
            let batch = bench.batch(order, seat.workstation, size).await?;
            bench.complete(&seat, batch, size - runnable).await?;
            settle(&pool).await?;
            let (took, _) = bench
                .admin_call(
                    reqwest::Method::POST,
                    &format!("/api/v1/orders/{order}/finalize"),
                    Some(json!({})),
                )
                .await?;
            finalize[i].latencies.push(took);
        }
    }
    report.versus(
        format!("finalize-order ({runnable} runnable tasks left), {versus}"),
        &finalize[1],
        &finalize[0],
    );
    let busy = bench.seat().await?;
    let busy_order = bench
        .order(sizes.my_batches_open * sizes.my_batches_tasks * 2)
        .await?;
    for _ in 0..sizes.my_batches_open {
        bench
            .batch(busy_order, busy.workstation, sizes.my_batches_tasks)
            .await?;
    }
    // The same number of batches, of 20 tasks each: only the tasks per batch differ.
    let quiet = bench.seat().await?;
    let quiet_order = bench.order(sizes.my_batches_open * 40).await?;
    for _ in 0..sizes.my_batches_open {
        bench.batch(quiet_order, quiet.workstation, 20).await?;
    }
    settle(&pool).await?;
    let mut my = Vec::new();
    for seat in [&quiet, &busy] {
        let token = seat.token.clone();
        let mut stats = Stats::default();
        for _ in 0..sizes.admin_samples {
            stats.latencies.push(
                bench
                    .send(reqwest::Method::GET, "/api/v1/me/batches", &token, None)
                    .await?
                    .0,
            );
        }
        my.push(stats);
    }
    report.versus(
        format!(
            "my-batches, {} open batches of {} tasks vs of 20",
            sizes.my_batches_open, sizes.my_batches_tasks
        ),
        &my[1],
        &my[0],
    );

    // 5. The console's lists on the large dataset against the small one.
    console_dataset(&bench, sizes.console_small, sizes).await?;
    settle(&pool).await?;
    let larger = format!(
        "{} vs {} console orders",
        sizes.console_large, sizes.console_small
    );
    for ((label, path), small) in console_calls.iter().zip(&console_small) {
        let large = sample(&mut bench, sizes.admin_samples, |_| {
            (reqwest::Method::GET, path.clone(), None)
        })
        .await?;
        report.versus(format!("{label}, {larger}"), &large, small);
    }

    // 6. The production path: complete-tasks through a transaction-pooling proxy beside the
    // direct connection. Last: the proxy needs statements sent unnamed, which is process-wide
    // once switched on.
    production_path(&mut bench, server, &report, sizes).await?;

    println!();
    println!("{} answers outside 2xx in all", bench.failures);
    Ok(bench.failures)
}

/// Serves every route of the local stack over `db` on a loopback port; returns its base URL.
async fn serve(db: Database, keys: &JwtKeys) -> Result<String, AnyError> {
    let app = keystone_local::routes().with_state(AppState::new(db, keys.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// A handle built as the functions build theirs (`DbConfig`: pool options, statement naming
/// from the URL), for `clients` concurrent requests.
fn function_database(url: &str, clients: usize) -> Result<Database, AnyError> {
    let connections = (clients + 2).to_string();
    let config = keystone_store::config::DbConfig::from_lookup(&|name: &str| match name {
        "DATABASE_URL" => Some(url.to_owned()),
        "DB_MAX_CONNECTIONS" => Some(connections.clone()),
        _ => None,
    })?;
    Ok(config.lazy_database()?)
}

/// The database name under which the bench's PgBouncer pools `BENCH_DB` by session.
const BENCH_DB_SESSION_POOLED: &str = "keystone_bench_session_pooled";

/// Part 6: complete-tasks (quantity 1) at each of `proxy_clients`, four ways, each on seats of
/// its own, each handle built as the functions build theirs:
/// - with named statements (what the functions send through RDS Proxy, which keeps them):
///   straight to PostgreSQL, then through PgBouncer pooling by session (the proxy's hop with
///   the statements kept);
/// - then, once statements are unnamed (for the whole process): straight again, then through
///   PgBouncer pooling by transaction (the test command's stand-in for RDS Proxy, which before
///   1.21 loses named statements between transactions).
///
/// Each path is compared with the direct path that sends the same statements, so the proxy's
/// own cost and the cost of unnamed statements are told apart.
async fn production_path(
    bench: &mut Bench,
    server: &Server,
    report: &Report,
    sizes: &Sizes,
) -> Result<(), AnyError> {
    let Some(bouncer) = Bouncer::start(
        &target_dir().join("keystone-bench/pgbouncer"),
        &server.admin_url,
        BENCH_DB_SESSION_POOLED,
        BENCH_DB,
    )
    .await?
    else {
        println!("| complete-tasks through PgBouncer | skipped: pgbouncer is not installed | | |");
        return Ok(());
    };
    let result = proxy_beside_direct(bench, server, &bouncer, report, sizes).await;
    bouncer.stop();
    result
}

/// One way to the database in part 6, and the timings measured on it per client count.
struct ProductionPath {
    label: String,
    /// Index of the direct path sending the same statements (itself for a direct one).
    baseline: usize,
    measured: Vec<(Stats, CpuTime)>,
}

async fn proxy_beside_direct(
    bench: &mut Bench,
    server: &Server,
    bouncer: &Bouncer,
    report: &Report,
    sizes: &Sizes,
) -> Result<(), AnyError> {
    const PATHS: usize = 4;
    let clients_max = sizes.proxy_clients.iter().copied().max().unwrap_or(1);
    let mut seats = Vec::new();
    for _ in 0..PATHS * sizes.proxy_clients.iter().sum::<usize>() {
        let seat = bench.seat().await?;
        let order = bench.order(sizes.tasks_per_client * 2).await?;
        let batch = bench
            .batch(order, seat.workstation, sizes.tasks_per_client)
            .await?;
        seats.push((seat, batch));
    }
    settle(&bench.pool).await?;
    let mut seats = seats.into_iter();
    let mut take = |clients: usize| seats.by_ref().take(clients).collect::<Vec<_>>();
    let seconds = Some(Duration::from_secs_f64(sizes.seconds));
    let measure = |base: String, work: Vec<(Seat, i64)>| {
        let bench = &*bench;
        async move {
            bench.load_at(&base, work.clone(), None, 20).await;
            let cpu = CpuTime::now();
            let stats = bench.load_at(&base, work, seconds, 0).await;
            (stats, CpuTime::now().since(cpu))
        }
    };
    let proxy = bouncer.version.as_str();
    let mut paths = vec![
        ProductionPath {
            label: "direct, named statements".to_owned(),
            baseline: 0,
            measured: Vec::new(),
        },
        ProductionPath {
            label: format!(
                "through {proxy} pooling by session, named statements (the proxy's hop, \
                 statements kept as RDS Proxy keeps them)"
            ),
            baseline: 0,
            measured: Vec::new(),
        },
        ProductionPath {
            label: "direct, unnamed statements".to_owned(),
            baseline: 2,
            measured: Vec::new(),
        },
        ProductionPath {
            label: format!(
                "through {proxy} pooling by transaction, unnamed statements (the test \
                 command's stand-in)"
            ),
            baseline: 2,
            measured: Vec::new(),
        },
    ];
    for (index, path) in paths.iter_mut().enumerate() {
        let url = match index {
            0 | 2 => server.url(BENCH_DB)?,
            1 => format!("{}/{BENCH_DB_SESSION_POOLED}", bouncer.base_url),
            _ => format!("{}/{BENCH_DB}?statement-cache-capacity=0", bouncer.base_url),
        };
        let mut db = function_database(&url, clients_max)?;
        if index == 2 {
            // From here on every statement of this process is sent unnamed. A connection that
            // already holds a named statement would keep using it (sqlx looks in its cache
            // first), which is why each path has a pool of its own.
            db = db.with_unnamed_statements();
        }
        let base = serve(db, &bench.keys).await?;
        for &clients in &sizes.proxy_clients {
            path.measured
                .push(measure(base.clone(), take(clients)).await);
        }
    }
    let mut failures = 0;
    for (at, &clients) in sizes.proxy_clients.iter().enumerate() {
        let p50 = |path: &ProductionPath| {
            path.measured.get(at).map_or(1e-9, |(stats, _)| {
                stats.quantile(0.5).as_secs_f64().max(1e-9)
            })
        };
        let direct_named = p50(&paths[0]);
        for path in &paths {
            let Some((stats, cpu)) = path.measured.get(at) else {
                continue;
            };
            failures += stats.failures;
            #[allow(clippy::cast_precision_loss)]
            let per_request = 1_000.0 / stats.latencies.len().max(1) as f64;
            report.row(
                format!(
                    "complete-tasks, {clients} client{}, {}",
                    if clients == 1 { "" } else { "s" },
                    path.label
                ),
                format!(
                    "{:.0} req/s, p50 ×{:.2} of direct with the same statements, ×{:.2} of \
                     direct named; CPU per request: API process {:.3} ms, PostgreSQL {:.3} ms, \
                     PgBouncer {:.3} ms",
                    stats.rate(),
                    p50(path) / p50(&paths[path.baseline]),
                    p50(path) / direct_named,
                    cpu.bench * per_request,
                    cpu.postgres * per_request,
                    cpu.pgbouncer * per_request,
                ),
                stats,
            );
        }
    }
    bench.failures += failures;
    Ok(())
}

/// One console order as the lists find it: its id, and one of its batches.
#[derive(Debug, Clone, Copy)]
struct ConsoleOrder {
    order: i64,
    batch: i64,
}

/// The console lists the bench times, each on the small and on the large dataset: first pages,
/// each filter kind, and one order's batches and one batch's tasks (the same in both). Pages
/// of 10, which the small dataset fills too, so both answers carry as many items.
fn console_calls(watched: &ConsoleOrder) -> Vec<(&'static str, String)> {
    vec![
        (
            "list-orders, first page",
            "/api/v1/orders?limit=10".to_owned(),
        ),
        (
            "list-orders, status=created,paused",
            "/api/v1/orders?status=created,paused&limit=10".to_owned(),
        ),
        (
            "list-orders, keyword of one order",
            "/api/v1/orders?keyword=console%200001".to_owned(),
        ),
        (
            "list-batches, first page",
            "/api/v1/batches?limit=10".to_owned(),
        ),
        (
            "list-batches, one order's",
            format!("/api/v1/batches?order_id={}&limit=10", watched.order),
        ),
        (
            "list-batches, status=pending",
            "/api/v1/batches?status=pending&limit=10".to_owned(),
        ),
        (
            "list-batch-tasks, one batch",
            format!("/api/v1/batches/{}/tasks?limit=10", watched.batch),
        ),
        (
            "list-stations, first page",
            "/api/v1/stations?limit=10".to_owned(),
        ),
    ]
}

/// Console orders `console {from:04}` up to the size's total for this phase (small: from 0 to
/// `console_small`; large: on to `console_large`), each on a station of its own with
/// `console_batches` batches of `console_tasks` tasks, made through the API by 8 clients at
/// once. Answers the order named `console 0001` (a small-phase order, for the per-order calls).
async fn console_dataset(
    bench: &Bench,
    from: usize,
    sizes: &Sizes,
) -> Result<ConsoleOrder, AnyError> {
    let to = if from == 0 {
        sizes.console_small
    } else {
        sizes.console_large
    };
    let workers = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let client = ConsoleClient {
            base: bench.base.clone(),
            http: bench.http.clone(),
            admin: bench.admin.clone(),
            pool: bench.pool.clone(),
            world: bench.world,
        };
        let (batches, tasks_per_batch) = (sizes.console_batches, sizes.console_tasks);
        tasks.spawn(async move {
            let mut first = None;
            for index in (from..to).filter(|i| i % workers == worker) {
                let made = client.order(index, batches, tasks_per_batch).await?;
                if index == 1 {
                    first = Some(made);
                }
            }
            Ok::<_, AnyError>(first)
        });
    }
    let mut watched = None;
    while let Some(done) = tasks.join_next().await {
        if let Some(made) = done?? {
            watched = Some(made);
        }
    }
    match (from, watched) {
        (0, Some(made)) => Ok(made),
        (0, None) => Err("the small console dataset has no order 1".into()),
        _ => Ok(ConsoleOrder { order: 0, batch: 0 }),
    }
}

/// What one seeding client needs: the API and the database for the station it seats.
struct ConsoleClient {
    base: String,
    http: reqwest::Client,
    admin: String,
    pool: PgPool,
    world: World,
}

impl ConsoleClient {
    async fn post(&self, path: &str, body: Value) -> Result<Value, AnyError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{path}: {status} {body}").into());
        }
        Ok(body)
    }

    async fn order(
        &self,
        index: usize,
        batches: usize,
        tasks_per_batch: i64,
    ) -> Result<ConsoleOrder, AnyError> {
        let target = i64::try_from(batches)? * tasks_per_batch;
        let order = self
            .post(
                "/api/v1/orders",
                json!({"organization_id": self.world.organization, "scene_id": self.world.scene,
                       "name": format!("console {index:04}"), "target_count": target}),
            )
            .await?;
        let order: i64 = order["id"].as_str().unwrap_or_default().parse()?;
        let workstation: i64 = sqlx::query_scalar(
            "WITH rt AS (SELECT id FROM robot_types WHERE name = 'BenchGloves'), \
                  r AS (INSERT INTO robots (robot_type_id, device_id, factory_id) \
                        SELECT id, 'console-' || md5(random()::text), 1 FROM rt RETURNING id), \
                  c AS (INSERT INTO data_collectors (name, operator_id) \
                        VALUES ('console', 'C' || md5(random()::text)) RETURNING id) \
             INSERT INTO workstations (robot_id, data_collector_id, organization_id, factory_id, \
                                       name, status) \
             SELECT r.id, c.id, $1, 1, 'console ' || $2, 'inactive' FROM r, c RETURNING id",
        )
        .bind(self.world.organization)
        .bind(i64::try_from(index)?)
        .fetch_one(&self.pool)
        .await?;
        let mut batch = 0;
        for _ in 0..batches {
            let created = self
                .post(
                    "/api/v1/batches",
                    json!({"order_id": order, "workstation_id": workstation,
                           "task_groups": [{"sop_id": self.world.sop,
                                            "subscene_id": self.world.subscene,
                                            "quantity": tasks_per_batch}]}),
                )
                .await?;
            batch = created["batch"]["id"]
                .as_str()
                .unwrap_or_default()
                .parse()?;
        }
        Ok(ConsoleOrder { order, batch })
    }
}

/// The latencies of `samples` admin calls built by `request(i)`, one after another.
async fn sample(
    bench: &mut Bench,
    samples: usize,
    request: impl Fn(usize) -> (reqwest::Method, String, Option<Value>),
) -> Result<Stats, AnyError> {
    let mut stats = Stats::default();
    for i in 0..samples {
        let (method, path, body) = request(i);
        stats
            .latencies
            .push(bench.admin_call(method, &path, body).await?.0);
    }
    Ok(stats)
}

/// What autovacuum and the relay's minutely run do between a day's work and the next: the
/// bench creates in seconds what production writes over hours, so it folds the batch status
/// tally (as every relay run does), vacuums and analyzes before measuring, instead of
/// measuring a burst's unfolded deltas, dead index entries and statistics that say the tables
/// are empty.
async fn settle(pool: &PgPool) -> Result<(), AnyError> {
    let db = Database::new(pool.clone());
    while keystone_store::batch_lists::fold_batch_tally(&db).await? > 0 {}
    sqlx::raw_sql("VACUUM (ANALYZE) tasks, batches, orders, task_group_counts, batch_status_tally")
        .execute(pool)
        .await?;
    Ok(())
}

async fn deadlocks(pool: &PgPool) -> Result<i64, AnyError> {
    Ok(sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}
