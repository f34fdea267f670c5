//! Debian's PgBouncer in front of the bench's PostgreSQL, so the bench can time the production
//! path beside the direct one: pooling by transaction as RDS Proxy does (which PgBouncer before
//! 1.21 can do only with unnamed statements), and by session for one database name, which
//! keeps named statements as RDS Proxy does.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::AnyError;

/// A PgBouncer this bench started (stopped by [`Bouncer::stop`]).
pub struct Bouncer {
    /// `postgres://user@127.0.0.1:port` (no database: callers append theirs).
    pub base_url: String,
    /// The `pgbouncer --version` line, for the report.
    pub version: String,
    started: Started,
}

struct Started {
    pidfile: PathBuf,
}

fn find_pgbouncer() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|p| p.exists())
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl Bouncer {
    /// A new PgBouncer under `dir`, in front of the server `admin_url` points at (over its Unix
    /// socket when the URL names one in `host=`): transaction pooling for every database, except
    /// session pooling for `session_alias`, an alias of `session_db`; the startup parameter
    /// RDS Proxy also ignores; trust for the URL's user, as the bench's PostgreSQL has. `None`
    /// when PgBouncer is not installed.
    pub async fn start(
        dir: &Path,
        admin_url: &str,
        session_alias: &str,
        session_db: &str,
    ) -> Result<Option<Self>, AnyError> {
        let Some(bin) = find_pgbouncer() else {
            return Ok(None);
        };
        let version = std::process::Command::new(&bin)
            .arg("--version")
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("PgBouncer")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_else(|_| "PgBouncer".to_owned());
        let server = reqwest::Url::parse(admin_url)?;
        let socket_dir = server
            .query_pairs()
            .find(|(key, _)| key == "host")
            .map(|(_, dir)| dir.into_owned());
        let host = socket_dir
            .as_deref()
            .or(server.host_str())
            .unwrap_or("127.0.0.1");
        let upstream_port = server.port().unwrap_or(5432);
        let user = if server.username().is_empty() {
            "postgres"
        } else {
            server.username()
        };
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let pidfile = dir.join("pgbouncer.pid");
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host={host} port={upstream_port}\n\
                 {session_alias} = host={host} port={upstream_port} dbname={session_db} \
                 pool_mode=session\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {auth}\npool_mode = transaction\n\
                 ignore_startup_parameters = extra_float_digits\nmax_client_conn = 500\n\
                 default_pool_size = 40\nlogfile = {log}\npidfile = {pid}\n",
                auth = dir.join("userlist.txt").display(),
                log = dir.join("pgbouncer.log").display(),
                pid = pidfile.display(),
            ),
        )?;
        std::fs::write(dir.join("userlist.txt"), format!("\"{user}\" \"\"\n"))?;
        let mut command = if is_root() {
            // PgBouncer refuses to run as root; like the cluster, it belongs to postgres.
            Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .await?;
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(&bin);
            runuser
        } else {
            Command::new(&bin)
        };
        let status = command
            .arg("-d")
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .status()
            .await?;
        if !status.success() {
            return Err(format!("pgbouncer did not start; see {}", dir.display()).into());
        }
        let bouncer = Self {
            base_url: format!("postgres://{user}@127.0.0.1:{port}"),
            version,
            started: Started { pidfile },
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bouncer.stop();
                return Err(format!("pgbouncer did not listen; see {}", dir.display()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Some(bouncer))
    }

    /// Stops it and waits (up to 5 s) until it is gone, while the bench's API pools still hold
    /// their connections: a session-pooled client that left first would make PgBouncer reset
    /// its server connection with `DISCARD ALL`, which PostgreSQL's statement log would show
    /// under the application's name (the test command's pinning check reads that log).
    pub fn stop(&self) {
        let Ok(pid) = std::fs::read_to_string(&self.started.pidfile) else {
            return;
        };
        let pid = pid.trim();
        let _ = std::process::Command::new("kill").arg(pid).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether process `pid` still runs (an exited one waiting to be reaped does not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}
