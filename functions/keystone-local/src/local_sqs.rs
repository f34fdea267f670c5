//! A local SQS server (`moto_server`, PyPI `moto[server]`) for the local stack, installed on
//! first use, on a free loopback port, stopped on exit.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// A running `moto_server`.
#[derive(Debug)]
pub struct LocalSqs {
    child: Child,
    pub endpoint: String,
}

/// `moto_server` on PATH, or in the user's pip scripts folder.
async fn find_moto() -> Option<String> {
    let mut candidates = vec!["moto_server".to_owned()];
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(format!("{home}/.local/bin/moto_server"));
    }
    for candidate in candidates {
        let works = Command::new(&candidate)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if works {
            return Some(candidate);
        }
    }
    None
}

/// Installs `moto[server]` with pip; Debian's own Python refuses system-wide installs
/// (PEP 668), so fall back to the user's site.
async fn install_moto() -> Result<(), AnyError> {
    tracing::info!("installing moto[server] for the local SQS server (pip)");
    for extra in [&[][..], &["--user", "--break-system-packages"][..]] {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg("moto[server]")
            .status()
            .await?;
        if status.success() {
            return Ok(());
        }
    }
    Err("could not install moto[server]; install it with: pip install \"moto[server]\"".into())
}

impl LocalSqs {
    /// Starts `moto_server`, installing `moto[server]` with pip when it is missing.
    ///
    /// # Errors
    /// When it cannot be installed or does not come up within 20 seconds.
    pub async fn start() -> Result<Self, AnyError> {
        let moto = match find_moto().await {
            Some(moto) => moto,
            None => {
                install_moto().await?;
                find_moto()
                    .await
                    .ok_or("moto[server] installed, but moto_server is not found")?
            }
        };
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                tracing::info!(%endpoint, "local SQS server started");
                return Ok(Self { child, endpoint });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("moto_server did not start within 20 s".into())
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Err(e) = self.child.kill().await {
            tracing::warn!(error = %e, "local SQS server did not stop cleanly");
        } else {
            tracing::info!("local SQS server stopped");
        }
    }
}
