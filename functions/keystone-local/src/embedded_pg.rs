//! A private PostgreSQL cluster for the local stack, run from the system's binaries in a
//! folder under `target/`, so `keystone-local` works with nothing but the `postgresql`
//! package installed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// Why the private cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error(
        "PostgreSQL server binaries not found (install the postgresql package, or set DATABASE_URL)"
    )]
    NoBinaries,
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
    #[error("I/O error while {step}")]
    Io {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A running private cluster; stop it with [`EmbeddedPostgres::stop`].
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bindir: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    /// `postgres://…/postgres` on the cluster's loopback port.
    pub admin_url: String,
    pub port: u16,
}

fn find_bindir() -> Option<PathBuf> {
    let from_pg_config = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|dir| dir.join("initdb").exists());
    if from_pg_config.is_some() {
        return from_pg_config;
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> Result<u16, EmbeddedPgError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| EmbeddedPgError::Io {
            step: "choosing a port",
            source,
        })
}

impl EmbeddedPostgres {
    /// Creates the cluster under `dir` on first use, stops a leftover server from a run that
    /// did not shut down, and starts it on a free loopback port.
    ///
    /// # Errors
    /// Missing binaries, or a failing `initdb` / `pg_ctl` (their output is included).
    pub async fn start(dir: &Path) -> Result<Self, EmbeddedPgError> {
        let bindir = find_bindir().ok_or(EmbeddedPgError::NoBinaries)?;
        let as_postgres = is_root();
        std::fs::create_dir_all(dir).map_err(|source| EmbeddedPgError::Io {
            step: "creating the data folder",
            source,
        })?;
        let dir = dir.canonicalize().map_err(|source| EmbeddedPgError::Io {
            step: "resolving the data folder",
            source,
        })?;
        let data = dir.join("data");
        let cluster = Self {
            bindir,
            data,
            as_postgres,
            admin_url: String::new(),
            port: 0,
        };
        if as_postgres {
            // initdb refuses to run as root; the cluster belongs to the postgres user.
            cluster
                .run(
                    "chown",
                    Command::new("chown").arg("-R").arg("postgres:").arg(&dir),
                )
                .await?;
        }
        if !cluster.data.join("PG_VERSION").exists() {
            tracing::info!(data = %cluster.data.display(), "creating the local PostgreSQL cluster");
            let mut initdb = cluster.tool("initdb");
            initdb.arg("-D").arg(&cluster.data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]);
            cluster.run("initdb", &mut initdb).await?;
        }
        let mut status = cluster.tool("pg_ctl");
        status.arg("-D").arg(&cluster.data).arg("status");
        if cluster.run("pg_ctl status", &mut status).await.is_ok() {
            tracing::warn!("stopping a PostgreSQL left running by an earlier run");
            cluster.stop().await;
        }
        let port = free_port()?;
        let mut start = cluster.tool("pg_ctl");
        start
            .arg("-D")
            .arg(&cluster.data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .arg("-w")
            .arg("-o")
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
            ))
            .arg("start");
        cluster
            .run("pg_ctl start", &mut start)
            .await
            .map_err(|e| EmbeddedPgError::Step {
                step: "pg_ctl start",
                detail: format!("{e}; see {}", dir.join("server.log").display()),
            })?;
        Ok(Self {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            ..cluster
        })
    }

    /// Where the cluster's server binaries (`pgbench` among them) live.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server (fast shutdown); failures are logged, not returned, since this runs
    /// on the way out.
    pub async fn stop(&self) {
        let mut stop = self.tool("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]);
        match self.run("pg_ctl stop", &mut stop).await {
            Ok(()) => tracing::info!("local PostgreSQL stopped"),
            Err(e) => tracing::warn!(error = %e, "local PostgreSQL did not stop cleanly"),
        }
    }

    fn tool(&self, name: &str) -> Command {
        let program = self.bindir.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    async fn run(&self, step: &'static str, command: &mut Command) -> Result<(), EmbeddedPgError> {
        let output = command
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| EmbeddedPgError::Io { step, source })?;
        if output.status.success() {
            return Ok(());
        }
        let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        }
        Err(EmbeddedPgError::Step { step, detail })
    }
}
