//! Test support: fixtures written straight to PostgreSQL, tokens, and a client that drives the
//! functions' routers in process. Every test gets its own migrated database from
//! `#[sqlx::test(migrator = "keystone_store::MIGRATOR")]`.

pub mod notify;
pub mod pinning;
pub mod round_trips;
pub mod sqs_faults;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use keystone_auth::{JwtKeys, Principal};
use keystone_http::AppState;
use keystone_http::config::AdminCredentials;
use keystone_http::state::LoginSettings;
use keystone_store::{Database, TransactionLimits};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;

pub const JWT_SECRET: &str = "keystone-test-secret-0123456789";

pub fn jwt_keys() -> JwtKeys {
    JwtKeys::new(&SecretString::from(JWT_SECRET), None)
}

pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-pass-123";

/// The handle the functions would build for a test's database: its own pool, whose sessions
/// are named as the functions' are ([`keystone_store::APPLICATION_NAME`]), so the pinning check
/// of the test command reads every statement the code under test sends, and none of the
/// fixtures'. Same size as the test's pool; idle connections close at once, so the test's
/// database can be dropped when it ends.
pub fn app_db(pool: &PgPool) -> Database {
    let options = (*pool.connect_options())
        .clone()
        .application_name(keystone_store::APPLICATION_NAME);
    Database::new(
        PgPoolOptions::new()
            .max_connections(pool.options().get_max_connections())
            .idle_timeout(std::time::Duration::from_secs(1))
            .connect_lazy_with(options),
    )
}

/// [`app_db`] with `limits` as the defaults of the role the test connects as, in the test's
/// database (what db-migrate does for the application role in AWS).
pub async fn app_db_with_limits(pool: &PgPool, limits: TransactionLimits) -> Database {
    let role = pool.connect_options().get_username().to_owned();
    let mut conn = pool.acquire().await.expect("a connection");
    keystone_store::set_role_limits(&mut conn, &role, limits)
        .await
        .expect("the test's role takes the limits");
    app_db(pool)
}

/// What the functions' state is built on: a test's pool becomes [`app_db`], a handle is taken
/// as it is.
pub trait IntoAppDatabase {
    fn into_app_database(self) -> Database;
}

impl IntoAppDatabase for PgPool {
    fn into_app_database(self) -> Database {
        app_db(&self)
    }
}

impl IntoAppDatabase for Database {
    fn into_app_database(self) -> Database {
        self
    }
}

/// Handler state as the functions get it, with admin credentials configured.
pub fn state(db: impl IntoAppDatabase) -> AppState {
    AppState::new(db.into_app_database(), jwt_keys()).with_login(LoginSettings {
        admin: Some(AdminCredentials {
            username: ADMIN_USERNAME.to_owned(),
            password: SecretString::from(ADMIN_PASSWORD),
        }),
        token_ttl: std::time::Duration::from_secs(3_600),
        throttle: Default::default(),
    })
}

#[track_caller]
pub fn token_for(principal: Principal) -> String {
    jwt_keys()
        .issue(&principal, chrono::Duration::hours(1))
        .expect("token signs")
}

pub fn collector_token(collector_id: i64) -> String {
    token_for(Principal::Collector {
        collector_id,
        operator_id: format!("DC{collector_id:03}"),
        issued_at: None,
    })
}

pub fn admin_token() -> String {
    token_for(Principal::Admin {
        operator_id: "admin".to_owned(),
    })
}

/// Every function's routes merged, as the local stack serves them.
pub fn router(pool: PgPool) -> Router {
    router_with(app_db(&pool))
}

/// [`router`] over a database handle with its own limits, statements or credentials.
pub fn router_with(db: Database) -> Router {
    keystone_local::routes().with_state(state(db))
}

/// A response read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl TestResponse {
    /// A 503 with `message` and `Retry-After: 1` (SPEC §6: nothing applied, retry).
    #[track_caller]
    pub fn assert_retryable(&self, message: &str) -> &Self {
        self.assert_error(StatusCode::SERVICE_UNAVAILABLE, message);
        assert_eq!(
            self.headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1"),
            "{:?}",
            self.headers
        );
        self
    }

    #[track_caller]
    /// The status and message, and a stable snake_case `code` beside them (SPEC §5: every
    /// error body carries one).
    pub fn assert_error(&self, status: StatusCode, message: &str) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.body["error"], json!(message), "body: {}", self.text);
        let code = self.body["code"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty()
                && code.starts_with(|c: char| c.is_ascii_lowercase())
                && code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "no snake_case code: {}",
            self.text
        );
        self
    }
}

/// Sends one request through a router.
pub async fn send(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> TestResponse {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body.into()).expect("request builds");
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("router is infallible");
    read(response).await
}

pub fn complete_path(batch_id: impl std::fmt::Display) -> String {
    format!("/api/v1/batches/{batch_id}/complete-tasks")
}

/// POSTs a complete-tasks body as a collector.
pub async fn complete(
    router: &Router,
    token: &str,
    batch_id: i64,
    body: Value,
    headers: &[(&str, &str)],
) -> TestResponse {
    send(
        router,
        Method::POST,
        &complete_path(batch_id),
        Some(token),
        headers,
        body.to_string(),
    )
    .await
}

/// Every row the functions may change, as text: equal snapshots mean nothing changed
/// (`updated_at` moves on any UPDATE through the trigger).
pub async fn snapshot(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws(E'\\n', \
            (SELECT json_agg(x ORDER BY id)::text FROM orders x), \
            (SELECT json_agg(x ORDER BY id)::text FROM batches x), \
            (SELECT json_agg(x ORDER BY id)::text FROM tasks x), \
            (SELECT json_agg(x ORDER BY id)::text FROM workstations x), \
            (SELECT json_agg(x ORDER BY id)::text FROM recorder_outbox x), \
            (SELECT json_agg(x ORDER BY id)::text FROM idempotency_keys x))",
    )
    .fetch_one(pool)
    .await
    .expect("snapshot query")
}

pub async fn scalar_text(pool: &PgPool, sql: &'static str, id: i64) -> String {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("scalar query")
}

pub async fn order_status(pool: &PgPool, id: i64) -> String {
    scalar_text(pool, "SELECT status FROM orders WHERE id = $1", id).await
}

pub async fn batch_status(pool: &PgPool, id: i64) -> String {
    scalar_text(pool, "SELECT status FROM batches WHERE id = $1", id).await
}

pub async fn workstation_status(pool: &PgPool, id: i64) -> String {
    scalar_text(pool, "SELECT status FROM workstations WHERE id = $1", id).await
}

/// `(id, status)` of a batch's live tasks, by id.
pub async fn task_statuses(pool: &PgPool, batch_id: i64) -> Vec<(i64, String)> {
    sqlx::query_as(
        "SELECT id, status FROM tasks WHERE batch_id = $1 AND deleted_at IS NULL ORDER BY id",
    )
    .bind(batch_id)
    .fetch_all(pool)
    .await
    .expect("task query")
}

/// `(notification_id, action, device_id, task_id)` of every outbox row, by id.
pub async fn outbox(pool: &PgPool) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT notification_id, action, device_id, task_id FROM recorder_outbox ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("outbox query")
}

/// A group key as the tests name them.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    pub sop_id: i64,
    pub subscene_id: i64,
}

impl Group {
    pub fn body(self, quantity: i64) -> Value {
        json!({ "quantity": quantity, "sop_id": self.sop_id, "subscene_id": self.subscene_id })
    }
}

/// A collector at a workstation with a robot.
#[derive(Debug, Clone)]
pub struct Seat {
    pub collector_id: i64,
    pub workstation_id: i64,
    pub robot_id: i64,
    pub token: String,
}

/// One organization with an order, an external-device workstation and one batch holding two
/// task groups; more seats, batches and tasks can be added.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub pool: PgPool,
    pub organization_id: i64,
    pub scene_id: i64,
    pub order_id: i64,
    pub seat: Seat,
    pub batch_id: i64,
    pub group_a: Group,
    pub group_b: Group,
}

impl Scenario {
    /// An order of `target` tasks; its batch holds `group_a` pending tasks of group A and
    /// `group_b` of group B, on a workstation whose robot type does not need Axon.
    pub async fn new(pool: &PgPool, target: i32, group_a: i64, group_b: i64) -> Self {
        // Several scenarios may share one database: names that must be unique get a serial.
        let serial: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
            .fetch_one(pool)
            .await
            .expect("serial");
        let organization_id: i64 = sqlx::query_scalar(
            "INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme-' || $1) RETURNING id",
        )
        .bind(serial)
        .fetch_one(pool)
        .await
        .expect("organization");
        let scene_id = insert_id(
            pool,
            "INSERT INTO scenes (name, factory_id) VALUES ('厨房', 1) RETURNING id",
        )
        .await;
        let subscene_a: i64 = sqlx::query_scalar(
            "INSERT INTO subscenes (scene_id, name) VALUES ($1, '台面') RETURNING id",
        )
        .bind(scene_id)
        .fetch_one(pool)
        .await
        .expect("subscene");
        let subscene_b: i64 = sqlx::query_scalar(
            "INSERT INTO subscenes (scene_id, name) VALUES ($1, '水槽') RETURNING id",
        )
        .bind(scene_id)
        .fetch_one(pool)
        .await
        .expect("subscene");
        let sop_a = sop(pool, "move_bottle", "v1").await;
        let sop_b = sop(pool, "wipe_table", "v2").await;
        let order_id: i64 = sqlx::query_scalar(
            "INSERT INTO orders (organization_id, scene_id, name, target_count) VALUES ($1, $2, 'Kitchen run', $3) RETURNING id",
        )
        .bind(organization_id).bind(scene_id).bind(target)
        .fetch_one(pool).await.expect("order");
        let mut scenario = Self {
            pool: pool.clone(),
            organization_id,
            scene_id,
            order_id,
            seat: Seat {
                collector_id: 0,
                workstation_id: 0,
                robot_id: 0,
                token: String::new(),
            },
            batch_id: 0,
            group_a: Group {
                sop_id: sop_a,
                subscene_id: subscene_a,
            },
            group_b: Group {
                sop_id: sop_b,
                subscene_id: subscene_b,
            },
        };
        let operator_id = format!("DC{:03}", serial + 1);
        let device_id = format!("robot_dc{}", 86 + serial);
        let external = Some(json!({"requires_axon": false}));
        scenario.seat = scenario
            .add_seat(&operator_id, external, Some(&device_id))
            .await;
        scenario.batch_id = scenario
            .add_batch(scenario.order_id, scenario.seat.workstation_id)
            .await;
        scenario
            .add_tasks(scenario.batch_id, scenario.group_a, group_a, "pending")
            .await;
        scenario
            .add_tasks(scenario.batch_id, scenario.group_b, group_b, "pending")
            .await;
        scenario
    }

    /// A collector, robot (of a new robot type with `capabilities`) and workstation.
    pub async fn add_seat(
        &self,
        operator_id: &str,
        capabilities: Option<Value>,
        device_id: Option<&str>,
    ) -> Seat {
        let pool = &self.pool;
        let robot_type_id: i64 = sqlx::query_scalar(
            "INSERT INTO robot_types (name, model, capabilities) VALUES ('SynGloves', 'SG-1', $1) RETURNING id",
        )
        .bind(capabilities).fetch_one(pool).await.expect("robot type");
        let robot_id: i64 = sqlx::query_scalar(
            "INSERT INTO robots (robot_type_id, device_id, factory_id) VALUES ($1, $2, 1) RETURNING id",
        )
        .bind(robot_type_id).bind(device_id).fetch_one(pool).await.expect("robot");
        let collector_id: i64 = sqlx::query_scalar(
            "INSERT INTO data_collectors (name, operator_id, organization_id) \
             VALUES ('张三', $1, $2) RETURNING id",
        )
        .bind(operator_id)
        .bind(self.organization_id)
        .fetch_one(pool)
        .await
        .expect("collector");
        let workstation_id: i64 = sqlx::query_scalar(
            "INSERT INTO workstations (robot_id, data_collector_id, organization_id, factory_id, name, status) \
             VALUES ($1, $2, $3, 1, $4, 'inactive') RETURNING id",
        )
        .bind(robot_id).bind(collector_id).bind(self.organization_id).bind(format!("WS {operator_id}"))
        .fetch_one(pool).await.expect("workstation");
        Seat {
            collector_id,
            workstation_id,
            robot_id,
            token: collector_token(collector_id),
        }
    }

    /// A robot of the scenario's first robot type with `device_id`, in factory 1, at no
    /// station.
    pub async fn add_robot(&self, device_id: &str) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO robots (robot_type_id, device_id, factory_id) \
             SELECT robot_type_id, $1, 1 FROM robots WHERE id = $2 RETURNING id",
        )
        .bind(device_id)
        .bind(self.seat.robot_id)
        .fetch_one(&self.pool)
        .await
        .expect("robot")
    }

    /// A collector of the scenario's organization (or of none) at no station, who logs in with
    /// `operator_id` and no password.
    pub async fn add_collector(&self, operator_id: &str, in_organization: bool) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO data_collectors (name, operator_id, organization_id) \
             VALUES ('赵六', $1, CASE WHEN $3 THEN $2 END) RETURNING id",
        )
        .bind(operator_id)
        .bind(self.organization_id)
        .bind(in_organization)
        .fetch_one(&self.pool)
        .await
        .expect("collector")
    }

    /// A collector at an Axon robot `device_id` (robot type without capabilities: Axon) with a
    /// pending batch of this order holding group B tasks in the given statuses.
    pub async fn add_axon_batch(
        &self,
        operator_id: &str,
        device_id: &str,
        tasks: &[(&str, i64)],
    ) -> (Seat, i64) {
        let seat = self.add_seat(operator_id, None, Some(device_id)).await;
        let batch = self.add_batch(self.order_id, seat.workstation_id).await;
        for (status, count) in tasks {
            self.add_tasks(batch, self.group_b, *count, status).await;
        }
        (seat, batch)
    }

    /// A pending batch of `order_id` on `workstation_id`.
    pub async fn add_batch(&self, order_id: i64, workstation_id: i64) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO batches (batch_id, order_id, workstation_id, organization_id, name) \
             VALUES ('batch_' || md5(random()::text), $1, $2, $3, 'batch') RETURNING id",
        )
        .bind(order_id)
        .bind(workstation_id)
        .bind(self.organization_id)
        .fetch_one(&self.pool)
        .await
        .expect("batch")
    }

    /// `count` tasks of `group` in `batch_id` with `status`, assigned one millisecond apart
    /// in id order. Returns their ids.
    pub async fn add_tasks(
        &self,
        batch_id: i64,
        group: Group,
        count: i64,
        status: &str,
    ) -> Vec<i64> {
        sqlx::query_scalar(
            "INSERT INTO tasks (task_id, batch_id, order_id, sop_id, subscene_id, scene_id, workstation_id, \
                                scene_name, subscene_name, organization_id, factory_id, status, assigned_at) \
             SELECT 'task_' || md5(random()::text || g), b.id, b.order_id, $2, s.id, s.scene_id, b.workstation_id, \
                    sc.name, s.name, b.organization_id, 1, $4, \
                    now() - interval '1 day' + g * interval '1 millisecond' \
             FROM batches b, subscenes s JOIN scenes sc ON sc.id = s.scene_id, generate_series(1, $5) g \
             WHERE b.id = $1 AND s.id = $3 ORDER BY g RETURNING id",
        )
        .bind(batch_id).bind(group.sop_id).bind(group.subscene_id).bind(status).bind(count)
        .fetch_all(&self.pool).await.expect("tasks")
    }
}

/// The SOP `slug`/`version`, created on first use.
pub async fn sop(pool: &PgPool, slug: &str, version: &str) -> i64 {
    sqlx::query_scalar(
        "WITH created AS (INSERT INTO sops (slug, version) VALUES ($1, $2) \
                          ON CONFLICT (slug, version) WHERE deleted_at IS NULL DO NOTHING RETURNING id) \
         SELECT id FROM created UNION ALL \
         SELECT id FROM sops WHERE slug = $1 AND version = $2 AND deleted_at IS NULL LIMIT 1",
    )
    .bind(slug).bind(version).fetch_one(pool).await.expect("sop")
}

/// Counts the statements PostgreSQL executed in this test's database while `work` ran
/// (pg_stat_statements, which the test command preloads).
pub async fn statements_run_by<F: std::future::Future>(pool: &PgPool, work: F) -> (i64, F::Output) {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(pool)
        .await
        .expect("pg_stat_statements extension");
    const CALLS: &str = "SELECT COALESCE(sum(calls), 0)::bigint FROM pg_stat_statements \
                         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let before: i64 = sqlx::query_scalar(CALLS)
        .fetch_one(pool)
        .await
        .expect("pg_stat_statements must be in shared_preload_libraries (tests/run.sh sets it)");
    let output = work.await;
    let after: i64 = sqlx::query_scalar(CALLS)
        .fetch_one(pool)
        .await
        .expect("statement count");
    // The `before` query itself is counted once it has run.
    (after - before - 1, output)
}

async fn insert_id(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("insert")
}

/// Sends a request that must be refused, and checks status, message and that the database
/// did not change at all.
#[track_caller]
pub fn assert_refused<'a>(
    pool: &'a PgPool,
    router: &'a Router,
    request: Request<Body>,
    status: StatusCode,
    message: &'a str,
) -> impl std::future::Future<Output = TestResponse> + 'a {
    let caller = std::panic::Location::caller();
    async move {
        let before = snapshot(pool).await;
        let response = router
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let response = read(response).await;
        assert_eq!(response.status, status, "{caller}: body {}", response.text);
        assert_eq!(
            response.body["error"],
            json!(message),
            "{caller}: body {}",
            response.text
        );
        assert_eq!(
            snapshot(pool).await,
            before,
            "{caller}: a refused request changed the database"
        );
        response
    }
}

/// Builds a complete-tasks request.
pub fn complete_request(
    token: Option<&str>,
    batch: impl std::fmt::Display,
    body: impl Into<Body>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(complete_path(batch));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body.into()).expect("request builds")
}

async fn read(response: axum::response::Response) -> TestResponse {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body reads")
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8 body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    TestResponse {
        status,
        headers,
        text,
        body,
    }
}

/// Builds a POST with an optional bearer token and a JSON body.
pub fn post_request(path: &str, token: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::builder().method(Method::POST).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(body.into()).expect("request builds")
}

/// POSTs `body` as the admin.
pub async fn admin_post(router: &Router, path: &str, body: Value) -> TestResponse {
    send(
        router,
        Method::POST,
        path,
        Some(&admin_token()),
        &[],
        body.to_string(),
    )
    .await
}

pub fn adjust_path(batch_id: impl std::fmt::Display) -> String {
    format!("/api/v1/batches/{batch_id}/tasks")
}

pub fn finalize_path(order_id: impl std::fmt::Display) -> String {
    format!("/api/v1/orders/{order_id}/finalize")
}

impl Group {
    /// A `task_groups` entry.
    pub fn entry(self, quantity: i64) -> Value {
        json!({ "sop_id": self.sop_id, "subscene_id": self.subscene_id, "quantity": quantity })
    }
}

/// Live tasks of a batch per status, e.g. `[("completed", 2), ("pending", 3)]`.
pub async fn live_counts(pool: &PgPool, batch_id: i64) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT status, count(*) FROM tasks WHERE batch_id = $1 AND deleted_at IS NULL \
         GROUP BY status ORDER BY status",
    )
    .bind(batch_id)
    .fetch_all(pool)
    .await
    .expect("count query")
}

/// Live tasks of an order.
pub async fn order_task_count(pool: &PgPool, order_id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tasks WHERE order_id = $1 AND deleted_at IS NULL")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .expect("count query")
}

/// GETs `path` with an optional bearer token.
pub async fn get(router: &Router, path: &str, token: Option<&str>) -> TestResponse {
    send(router, Method::GET, path, token, &[], Body::empty()).await
}

pub fn reopen_path(batch_id: impl std::fmt::Display) -> String {
    format!("/api/v1/batches/{batch_id}/reopen-tasks")
}

/// `/api/v1/orders/{id}/{control}` for pause, resume and cancel.
pub fn order_control_path(order_id: impl std::fmt::Display, control: &str) -> String {
    format!("/api/v1/orders/{order_id}/{control}")
}

/// PATCHes an order's target as the admin.
pub async fn retarget(router: &Router, order_id: i64, target_count: Value) -> TestResponse {
    send(
        router,
        Method::PATCH,
        &format!("/api/v1/orders/{order_id}"),
        Some(&admin_token()),
        &[],
        json!({ "target_count": target_count }).to_string(),
    )
    .await
}

/// Every stored progress counter (SPEC §3: orders, batches, task groups) that differs from the
/// count over live task rows, one line each; empty when none drifted.
pub async fn counter_drift(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('order %s stores %s/%s, tasks say %s/%s', o.id, o.task_count, \
                       o.completed_count, x.tasks, x.completed) \
         FROM orders o CROSS JOIN LATERAL ( \
             SELECT count(*) AS tasks, count(*) FILTER (WHERE status = 'completed') AS completed \
             FROM tasks WHERE order_id = o.id AND deleted_at IS NULL) x \
         WHERE (o.task_count, o.completed_count) <> (x.tasks, x.completed) \
         UNION ALL \
         SELECT format('batch %s stores %s, tasks say %s', b.id, \
                       ROW(b.task_count, b.completed_count, b.failed_count, b.cancelled_count, \
                           b.pending_count), \
                       ROW(x.tasks, x.completed, x.failed, x.cancelled, x.pending)) \
         FROM batches b CROSS JOIN LATERAL ( \
             SELECT count(*) AS tasks, \
                    count(*) FILTER (WHERE status = 'completed') AS completed, \
                    count(*) FILTER (WHERE status = 'failed') AS failed, \
                    count(*) FILTER (WHERE status = 'cancelled') AS cancelled, \
                    count(*) FILTER (WHERE status = 'pending') AS pending \
             FROM tasks WHERE batch_id = b.id AND deleted_at IS NULL) x \
         WHERE (b.task_count, b.completed_count, b.failed_count, b.cancelled_count, b.pending_count) \
               <> (x.tasks, x.completed, x.failed, x.cancelled, x.pending) \
         UNION ALL \
         SELECT format('group %s/%s/%s %s stores %s, tasks say %s', batch_id, sop_id, subscene_id, \
                       status, COALESCE(c.task_count, 0), COALESCE(t.n, 0)) \
         FROM (SELECT batch_id, sop_id, subscene_id, status, count(*) AS n FROM tasks \
               WHERE deleted_at IS NULL GROUP BY batch_id, sop_id, subscene_id, status) t \
         FULL JOIN (SELECT * FROM task_group_counts WHERE task_count <> 0) c \
              USING (batch_id, sop_id, subscene_id, status) \
         WHERE COALESCE(c.task_count, 0) <> COALESCE(t.n, 0) \
         UNION ALL \
         SELECT format('organization %s has %s %s batches, the tally says %s', organization_id, \
                       COALESCE(b.n, 0), status, COALESCE(y.n, 0)) \
         FROM (SELECT organization_id, status, count(*) AS n FROM batches \
               WHERE deleted_at IS NULL GROUP BY organization_id, status) b \
         FULL JOIN (SELECT organization_id, status, sum(delta) AS n FROM batch_status_tally \
                    GROUP BY organization_id, status) y USING (organization_id, status) \
         WHERE COALESCE(b.n, 0) <> COALESCE(y.n, 0)",
    )
    .fetch_all(pool)
    .await
    .expect("counter drift query")
}

/// Sets a batch's status directly, as a fixture (no rule applies).
pub async fn set_batch_status(pool: &PgPool, batch_id: i64, status: &str) {
    sqlx::query("UPDATE batches SET status = $2 WHERE id = $1")
        .bind(batch_id)
        .bind(status)
        .execute(pool)
        .await
        .expect("batch status fixture");
}

/// Sets an order's status directly, as a fixture (no rule applies).
pub async fn set_order_status(pool: &PgPool, order_id: i64, status: &str) {
    sqlx::query("UPDATE orders SET status = $2 WHERE id = $1")
        .bind(order_id)
        .bind(status)
        .execute(pool)
        .await
        .expect("order status fixture");
}

/// Recorder commands written to the outbox for an order.
pub async fn outbox_count(pool: &PgPool, order_id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM recorder_outbox WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .expect("outbox count")
}

/// Whether a JSON plan (`EXPLAIN (FORMAT JSON)`) reads `relation` sequentially.
pub fn seq_scans(plan: &Value, relation: &str) -> bool {
    match plan {
        Value::Object(node) => {
            (node.get("Node Type") == Some(&json!("Seq Scan"))
                && node.get("Relation Name") == Some(&json!(relation)))
                || node.values().any(|child| seq_scans(child, relation))
        }
        Value::Array(items) => items.iter().any(|child| seq_scans(child, relation)),
        _ => false,
    }
}

/// Prepares each `(name, parameter types, statement)` on one connection, then answers the JSON
/// plan of each `EXECUTE …` given. The first executions of a prepared statement get custom
/// plans, planned for their own values — as the list statements are, which run unnamed.
pub async fn plans_of(
    pool: &PgPool,
    statements: &[(&str, String, &str)],
    executions: &[String],
) -> Vec<(String, Value)> {
    let mut conn = pool.acquire().await.expect("connection");
    for (name, types, sql) in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PREPARE {name} {types} AS {sql}"
        )))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("PREPARE {name}: {e}"));
    }
    let mut plans = Vec::new();
    for execution in executions {
        let explain = format!("EXPLAIN (FORMAT JSON) {execution}");
        let plan: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(explain.clone()))
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{explain}: {e}"));
        plans.push((execution.clone(), plan));
    }
    plans
}

/// Sends a request with an admin's token, and `body` as JSON unless it is null.
pub async fn admin_call(router: &Router, method: Method, path: &str, body: Value) -> TestResponse {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    send(router, method, path, Some(&admin_token()), &[], body).await
}

/// Logs in through the API.
pub async fn log_in(router: &Router, account: &str, password: &str) -> TestResponse {
    send(
        router,
        Method::POST,
        "/api/v1/auth/login",
        None,
        &[],
        json!({"account": account, "password": password}).to_string(),
    )
    .await
}

/// Each `(method, path)` answers a collector's token with 403 `admin role required` and no token
/// with 401 `authentication required`, whatever the body.
pub async fn assert_admin_only(
    router: &Router,
    collector_token: &str,
    routes: &[(Method, String)],
) {
    for (token, status, message) in [
        (
            Some(collector_token),
            StatusCode::FORBIDDEN,
            "admin role required",
        ),
        (None, StatusCode::UNAUTHORIZED, "authentication required"),
    ] {
        for (method, path) in routes {
            send(
                router,
                method.clone(),
                path,
                token,
                &[],
                json!({"name": "x"}).to_string(),
            )
            .await
            .assert_error(status, message);
        }
    }
}
