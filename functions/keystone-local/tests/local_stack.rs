//! Runs the real `keystone-local` binary with no `DATABASE_URL`: it must start its private
//! PostgreSQL, load demo data, print a working sample request, serve it, and on SIGTERM exit
//! cleanly and stop the database it started.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the stack if the test fails half-way, so no server outlives it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn post(port: u16, path: &str, token: &str, body: &str) -> (u16, String) {
    request(port, "POST", path, token, body)
}

fn request(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `keystone-local` with `DATABASE_URL` at a transaction-pooling proxy (tests/run.sh's PgBouncer,
/// which refuses startup options as RDS Proxy does) applies migrations, loads the demo data and
/// serves every request of the demo through it.
#[test]
fn the_local_stack_runs_through_a_transaction_pooling_proxy() {
    let proxy = std::env::var("KEYSTONE_PGBOUNCER_URL")
        .expect("KEYSTONE_PGBOUNCER_URL is unset: run the tests through tests/run.sh");
    let direct = std::env::var("DATABASE_URL").expect("DATABASE_URL of the test cluster");
    let name = format!("keystone_local_proxy_{}", std::process::id());
    let admin = |sql: String| {
        let direct = direct.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let pool = sqlx::PgPool::connect(&direct).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            });
    };
    admin(format!("CREATE DATABASE {name}"));
    let port = free_port();

    let mut stack = Running(
        Command::new(env!("CARGO_BIN_EXE_keystone-local"))
            .arg("--demo")
            .env(
                "DATABASE_URL",
                format!("{proxy}/{name}?statement-cache-capacity=0"),
            )
            .env_remove("KEYSTONE_QUEUE_URL")
            .env_remove("RECORDER_RPC_URL_TEMPLATE")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("DB_LOCK_TIMEOUT_MS", "1000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    // The migrations ran through the proxy too, on a server connection it keeps and hands to
    // the first request: that session must have the limits the migrations made the role's.
    exercise(&mut stack, port, Some(&with_database(&direct, &name)));
    admin(format!("DROP DATABASE {name} WITH (FORCE)"));
}

#[test]
fn the_run_command_serves_demo_data_from_a_private_postgres_and_shuts_down_cleanly() {
    let target = PathBuf::from(format!("/tmp/keystone-local-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir_all(&target).unwrap();
    // The postgres user must be able to reach the cluster folder below.
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();

    let mut stack = Running(
        Command::new(env!("CARGO_BIN_EXE_keystone-local"))
            .env_remove("DATABASE_URL")
            .env_remove("AWS_ENDPOINT_URL_SQS")
            .env_remove("KEYSTONE_QUEUE_URL")
            .env_remove("RECORDER_RPC_URL_TEMPLATE")
            .env("CARGO_TARGET_DIR", &target)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    exercise(&mut stack, port, None);
    let pid_file = target.join("keystone-local/postgres/data/postmaster.pid");
    assert!(!pid_file.exists(), "the private PostgreSQL was stopped");
    let _ = std::fs::remove_dir_all(&target);
}

fn committed_document() -> String {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(repo.join("docs/openapi.json")).unwrap()
}

/// The README's regenerate command prints exactly the committed document on stdout, log
/// filter or not (logging writes to stdout too).
#[test]
fn the_openapi_flag_prints_the_committed_document() {
    let output = Command::new(env!("CARGO_BIN_EXE_keystone-local"))
        .arg("--openapi")
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed == committed_document(),
        "--openapi printed another document"
    );
}

/// Reads the banner up to the ready line, then runs the demo's requests (complete, login,
/// finalize with four recorder notifications delivered) and stops the stack with SIGTERM.
/// `url` (`postgres://…/db?…`) with another database.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{database}?{query}")
}

/// Holds every order row locked from a direct connection to `url` until the answer comes back.
fn with_orders_locked<T>(url: &str, during: impl FnOnce() -> T) -> T {
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let url = url.to_owned();
    let holder = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                let mut tx = conn.begin().await.unwrap();
                sqlx::query("SELECT id FROM orders FOR UPDATE")
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap();
                locked_tx.send(()).unwrap();
                let _ = released.recv();
                tx.rollback().await.unwrap();
            });
    });
    locked.recv().unwrap();
    let answer = during();
    release.send(()).unwrap();
    holder.join().unwrap();
    answer
}

/// Reads the ready banner, then runs the demo's requests. With `lock_limit_db` (the stack's
/// database, reached directly; the stack started with `DB_LOCK_TIMEOUT_MS` = 1000), the first
/// request meets a locked order and must answer 503 within the limit: the session it runs on
/// has the role's limits.
fn exercise(stack: &mut Running, port: u16, lock_limit_db: Option<&str>) {
    let stdout = stack.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let mut banner = Vec::new();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not ready in time: {banner:#?}"
        );
        let line = lines
            .next()
            .expect("the stack exited before it was ready")
            .unwrap();
        let ready = line.contains("keystone-local ready");
        banner.push(line);
        if ready {
            break;
        }
    }
    // Written to a pipe, the log is plain text: no terminal colour codes in a file.
    assert!(
        banner.iter().all(|line| !line.contains('\u{1b}')),
        "colour codes in piped logs: {banner:#?}"
    );
    // Keep draining output so the child never blocks on a full pipe.
    let later_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = later_lines.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });

    let token = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("export DC001_TOKEN="))
        .expect("DC001 token");
    let curl_at = banner
        .iter()
        .position(|l| l.contains("complete-tasks"))
        .expect("sample request");
    let path = banner[curl_at]
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap();
    let path = &path[path.find("/api/").unwrap()..];
    let body = banner[curl_at + 2]
        .split("-d '")
        .nth(1)
        .unwrap()
        .trim_end_matches('\'');

    if let Some(db) = lock_limit_db {
        let started = Instant::now();
        let (status, response) = with_orders_locked(db, || post(port, path, token, body));
        assert_eq!(status, 503, "{response}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited {:?} for a lock",
            started.elapsed()
        );
    }
    let (status, response) = post(port, path, token, body);
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("\"completed_count\":2"), "{response}");

    // SPEC §10: the stack serves the committed API document.
    let (status, document) = request(port, "GET", "/openapi.json", "", "");
    assert_eq!(status, 200);
    assert!(
        document == committed_document(),
        "/openapi.json is not docs/openapi.json"
    );

    // The demo collector logs in with the password the banner prints.
    let login = r#"{"account":"DC001","password":"keystone-demo"}"#;
    let (status, response) = post(port, "/api/v1/auth/login", "", login);
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("\"access_token\""), "{response}");

    // Let the consumer go through at least one empty long poll first: a poll that outlives
    // the SQS client's timeouts would hide the notifications for a visibility timeout.
    std::thread::sleep(Duration::from_secs(7));

    // Finalizing the demo order cancels DC002's ready and in-progress Axon tasks: their
    // notifications go through the local SQS server to the built-in stand-in recorder.
    let admin = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("export ADMIN_TOKEN="))
        .unwrap();
    let (status, response) = post(port, "/api/v1/orders/1/finalize", admin, "");
    assert_eq!(status, 200, "{response}");
    assert!(
        response.contains("\"notifications_enqueued\":4"),
        "{response}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rpcs = later_lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("local recorder received an RPC"))
            .count();
        if rpcs == 4 {
            break;
        }
        assert!(
            rpcs < 4 && Instant::now() < deadline,
            "{rpcs} recorder RPCs"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let polling_errors: Vec<String> = later_lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("cannot poll the queue"))
        .cloned()
        .collect();
    assert!(polling_errors.is_empty(), "{polling_errors:#?}");

    let pid = stack.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = stack.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "clean exit: {exit}");
}
