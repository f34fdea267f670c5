//! A TCP relay that counts round trips between PostgreSQL clients and a server (or a proxy):
//! every time a client speaks after the server last spoke is one turn of the conversation,
//! which is what each statement pays in latency through RDS Proxy or PgBouncer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};

/// Where the relay forwards to.
#[derive(Debug, Clone)]
pub enum Upstream {
    Tcp(SocketAddr),
    /// A PostgreSQL server's Unix socket file (`…/.s.PGSQL.<port>`).
    Unix(PathBuf),
}

impl Upstream {
    /// The server a `postgres://…` URL names: its Unix socket when the URL gives a socket folder
    /// (the test cluster's superuser logs in there without a password), else its TCP port on
    /// loopback.
    pub fn of_url(url: &str) -> Self {
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        match options.get_socket() {
            Some(dir) => Self::Unix(dir.join(format!(".s.PGSQL.{}", options.get_port()))),
            None => Self::Tcp(SocketAddr::from(([127, 0, 0, 1], options.get_port()))),
        }
    }
}

/// The relay; it runs until the test's runtime ends.
#[derive(Debug, Clone)]
pub struct RoundTripCounter {
    addr: SocketAddr,
    turns: Arc<AtomicUsize>,
}

impl RoundTripCounter {
    /// Listens on a loopback port and relays every connection to `upstream`.
    pub async fn start(upstream: Upstream) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let turns = Arc::new(AtomicUsize::new(0));
        let counted = turns.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                match &upstream {
                    Upstream::Tcp(addr) => {
                        relay(
                            client,
                            TcpStream::connect(addr).await.unwrap(),
                            counted.clone(),
                        );
                    }
                    Upstream::Unix(path) => {
                        relay(
                            client,
                            UnixStream::connect(path).await.unwrap(),
                            counted.clone(),
                        );
                    }
                }
            }
        });
        Self { addr, turns }
    }

    /// `host:port` to put in a database URL instead of the upstream's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Turns so far, over every connection.
    pub fn turns(&self) -> usize {
        self.turns.load(Ordering::SeqCst)
    }
}

/// Copies both ways; a client read that follows a server read counts one turn. The server side
/// marks that it spoke before passing its bytes on, so the client's answer to them always sees
/// the mark.
fn relay<S>(client: TcpStream, server: S, turns: Arc<AtomicUsize>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let server_spoke = Arc::new(AtomicBool::new(true));
    let spoke = server_spoke.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
            if server_spoke.swap(false, Ordering::SeqCst) {
                turns.fetch_add(1, Ordering::SeqCst);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        while let Ok(n @ 1..) = server_read.read(&mut buffer).await {
            spoke.store(true, Ordering::SeqCst);
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    });
}

/// Turns the relay saw for one completion of `quantity`, including what the pool does with the
/// connection after the answer.
pub async fn turns_of_completion(
    relay: &RoundTripCounter,
    router: &axum::Router,
    s: &crate::Scenario,
    quantity: i64,
) -> usize {
    let before = relay.turns();
    let response = crate::complete(
        router,
        &s.seat.token,
        s.batch_id,
        s.group_a.body(quantity),
        &[],
    )
    .await;
    assert_eq!(
        response.status,
        axum::http::StatusCode::OK,
        "{}",
        response.text
    );
    // sqlx tests a connection it gets back (one Sync) in a task of its own, after the answer.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    relay.turns() - before
}
