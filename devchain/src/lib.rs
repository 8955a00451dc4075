//! Embedded regtest chain on Bitcoin Core's validation engine (`bitcoinkernel`): a bitcoind
//! stand-in for regtest runs and CI.
//!
//! The kernel keeps a regtest chainstate in a data directory (a temporary one by default) and
//! judges every block exactly as Bitcoin Core would. Around it the devchain serves, on real
//! sockets, bitcoind-compatible JSON-RPC (basic auth, `.cookie`) and the Bitcoin P2P protocol.
//!
//! Library use (the node starts it in-process for `--network regtest` without a bitcoind):
//!
//! ```no_run
//! # async fn demo() -> Result<(), devchain::DevchainError> {
//! use devchain::{Devchain, DevchainConfig};
//! let devchain = Devchain::start(DevchainConfig::ephemeral()).await?; // ports 0: any free port
//! let url = devchain.rpc_url(); // "http://127.0.0.1:PORT/"
//! let (user, password) = devchain.rpc_auth();
//! let p2p = devchain.p2p_addr();
//! devchain.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Files: `chain.rs` (the chainstate thread), `submit.rs` (blocks in, BIP22 reasons out),
//! `check.rs` (consensus constants and Core's checks mirrored), `kernel_log.rs`,
//! `utxo.rs`, `mempool.rs`, `template.rs`, `rpc.rs` (HTTP/JSON-RPC), `methods.rs` (the RPC
//! methods), `views.rs` (their JSON), `p2p.rs` (the P2P protocol).

// Every public item is documented (the node crate follows once its Chia modules are).
#![warn(missing_docs)]

mod api;
mod chain;
mod check;
mod kernel_log;
mod mempool;
mod methods;
mod p2p;
mod rpc;
mod submit;
mod template;
mod utxo;
mod views;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use api::RpcError;
pub use chain::{ChainError, ChainHandle, TipState};
pub use submit::SubmitOutcome;

/// Default regtest JSON-RPC port.
pub const DEFAULT_RPC_PORT: u16 = 18443;
/// Default regtest P2P port.
pub const DEFAULT_P2P_PORT: u16 = 18444;

/// How RPC clients authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// A random password for user `__cookie__`, written to `DATADIR/regtest/.cookie`.
    Cookie,
    /// Fixed credentials (no cookie file).
    UserPassword {
        /// The RPC user name (`-rpcuser`).
        user: String,
        /// Its password (`-rpcpassword`).
        password: String,
    },
}

/// Where and how the devchain runs.
#[derive(Debug, Clone)]
pub struct DevchainConfig {
    /// Data directory; `None` = a temporary directory removed at shutdown.
    pub datadir: Option<PathBuf>,
    /// JSON-RPC listen address (port 0 = any free port).
    pub rpc_addr: SocketAddr,
    /// P2P listen address (port 0 = any free port).
    pub p2p_addr: SocketAddr,
    /// How RPC clients authenticate (cookie file or fixed credentials).
    pub rpc_auth: RpcAuth,
    /// RPC requests executed at once (Core's `-rpcthreads`).
    pub rpc_threads: usize,
    /// RPC requests waiting beyond those; more are refused with HTTP 503 (Core's
    /// `-rpcworkqueue`).
    pub rpc_work_queue: usize,
}

impl DevchainConfig {
    /// A temporary data directory, loopback, free ports, cookie auth.
    pub fn ephemeral() -> Self {
        Self {
            datadir: None,
            rpc_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            p2p_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            rpc_auth: RpcAuth::Cookie,
            rpc_threads: rpc::RPC_THREADS,
            rpc_work_queue: rpc::RPC_WORK_QUEUE,
        }
    }
}

/// Why the devchain could not start or stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevchainError {
    /// The data directory (or the temporary one) could not be created.
    #[error("cannot prepare the data directory: {0}")]
    Datadir(#[source] std::io::Error),
    /// The RPC or P2P listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The `.cookie` file could not be written.
    #[error("cannot write the cookie file {path}: {source}")]
    Cookie {
        /// The cookie file.
        path: PathBuf,
        /// Why writing failed.
        #[source]
        source: std::io::Error,
    },
    /// The chainstate (the kernel) failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The thread owning the chainstate ended by a panic.
    #[error("the chainstate thread panicked")]
    ThreadPanicked,
    /// The async runtime of `p2pool devchain` could not start, or Ctrl-C could not be watched.
    #[error("runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// A running devchain. Dropping it without [`Devchain::shutdown`] stops the servers and lets the
/// chainstate close in the background; `shutdown` waits for it.
#[derive(Debug)]
pub struct Devchain {
    chain: ChainHandle,
    rpc_addr: SocketAddr,
    p2p_addr: SocketAddr,
    user: String,
    password: String,
    cookie_path: Option<PathBuf>,
    datadir: PathBuf,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    kernel_thread: Option<std::thread::JoinHandle<()>>,
}

impl Devchain {
    /// Open (or create) the chain, bind both sockets and start serving.
    pub async fn start(config: DevchainConfig) -> Result<Self, DevchainError> {
        let (datadir, tempdir) = match &config.datadir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(DevchainError::Datadir)?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("p2pool-devchain-")
                    .tempdir()
                    .map_err(DevchainError::Datadir)?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let rpc_listener =
            TcpListener::bind(config.rpc_addr)
                .await
                .map_err(|source| DevchainError::Listen {
                    addr: config.rpc_addr,
                    source,
                })?;
        let p2p_listener =
            TcpListener::bind(config.p2p_addr)
                .await
                .map_err(|source| DevchainError::Listen {
                    addr: config.p2p_addr,
                    source,
                })?;
        let rpc_addr = rpc_listener.local_addr().map_err(DevchainError::Datadir)?;
        let p2p_addr = p2p_listener.local_addr().map_err(DevchainError::Datadir)?;
        let dir = datadir.clone();
        let (chain, kernel_thread) =
            tokio::task::spawn_blocking(move || chain::spawn(&dir, tempdir))
                .await
                .map_err(|_| DevchainError::ThreadPanicked)??;
        let (user, password, cookie_path) = match &config.rpc_auth {
            RpcAuth::UserPassword { user, password } => (user.clone(), password.clone(), None),
            RpcAuth::Cookie => {
                let password = hex::encode(random_bytes());
                let path = datadir.join("regtest").join(".cookie");
                write_cookie(&path, &password)?;
                ("__cookie__".to_owned(), password, Some(path))
            }
        };
        let (stop, stop_rx) = watch::channel(false);
        let peers = Arc::new(AtomicUsize::new(0));
        let ctx = Arc::new(methods::RpcContext {
            chain: chain.clone(),
            user: user.clone(),
            password: password.clone(),
            peers: peers.clone(),
            started: Instant::now(),
            shutdown: stop_rx.clone(),
            stop: stop.clone(),
        });
        let servers = vec![
            tokio::spawn(rpc::serve(
                rpc_listener,
                ctx,
                (config.rpc_threads, config.rpc_work_queue),
                stop_rx.clone(),
            )),
            tokio::spawn(p2p::serve(p2p_listener, chain.clone(), peers, stop_rx)),
        ];
        tracing::info!(%rpc_addr, %p2p_addr, datadir = %datadir.display(), "devchain started");
        Ok(Self {
            chain,
            rpc_addr,
            p2p_addr,
            user,
            password,
            cookie_path,
            datadir,
            stop,
            servers,
            kernel_thread: Some(kernel_thread),
        })
    }

    /// `http://ADDR/`, the JSON-RPC endpoint.
    pub fn rpc_url(&self) -> String {
        format!("http://{}/", self.rpc_addr)
    }

    /// The address the JSON-RPC server listens on (the port chosen when 0 was asked for).
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// RPC user and password (the cookie's, with cookie auth).
    pub fn rpc_auth(&self) -> (&str, &str) {
        (&self.user, &self.password)
    }

    /// The `.cookie` file, with cookie auth.
    pub fn cookie_path(&self) -> Option<&Path> {
        self.cookie_path.as_deref()
    }

    /// The address the P2P server listens on (the port chosen when 0 was asked for).
    pub fn p2p_addr(&self) -> SocketAddr {
        self.p2p_addr
    }

    /// The data directory in use (the temporary one when none was configured).
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// Resolves when the servers were told to stop (the `stop` RPC or [`Devchain::shutdown`]).
    pub async fn stopped(&self) {
        wait_stop(&mut self.stop.subscribe()).await;
    }

    /// Direct access to the chainstate thread (for in-process callers and tests).
    pub fn chain(&self) -> &ChainHandle {
        &self.chain
    }

    /// Stop serving, close the chainstate cleanly and remove the cookie (and a temporary
    /// data directory).
    pub async fn shutdown(mut self) -> Result<(), DevchainError> {
        let _ = self.stop.send(true);
        for server in self.servers.drain(..) {
            let _ = server.await;
        }
        // Close the chainstate even if a caller still holds a `ChainHandle`.
        let _ = self.chain.call(|s| s.close()).await;
        if let Some(thread) = self.kernel_thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|_| DevchainError::ThreadPanicked)?
                .map_err(|_| DevchainError::ThreadPanicked)?;
        }
        if let Some(path) = self.cookie_path.take() {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("devchain stopped");
        Ok(())
    }
}

impl Drop for Devchain {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(path) = self.cookie_path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn wait_stop(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

fn random_bytes() -> [u8; 32] {
    use bitcoin::secp256k1::rand::RngCore;
    let mut bytes = [0u8; 32];
    bitcoin::secp256k1::rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

fn write_cookie(path: &Path, password: &str) -> Result<(), DevchainError> {
    let err = |source| DevchainError::Cookie {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("__cookie__:{password}")).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

/// Options of `p2pool devchain`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevchainArgs {
    /// Data directory (default: a temporary directory, removed on exit).
    #[arg(long)]
    pub datadir: Option<PathBuf>,
    /// JSON-RPC port.
    #[arg(long, default_value_t = DEFAULT_RPC_PORT)]
    pub rpc_port: u16,
    /// P2P port.
    #[arg(long, default_value_t = DEFAULT_P2P_PORT)]
    pub p2p_port: u16,
    /// Address both servers bind to.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// RPC user (with --rpc-password; default: cookie auth in the data directory).
    #[arg(long, requires = "rpc_password")]
    pub rpc_user: Option<String>,
    /// RPC password.
    #[arg(long, requires = "rpc_user")]
    pub rpc_password: Option<String>,
    /// RPC requests executed at once, as bitcoind's `-rpcthreads`.
    #[arg(long, default_value_t = rpc::RPC_THREADS, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    pub rpc_threads: usize,
    /// RPC requests that may wait for those; more get HTTP 503 "Work queue depth exceeded", as
    /// bitcoind's `-rpcworkqueue`.
    #[arg(long, default_value_t = rpc::RPC_WORK_QUEUE)]
    pub rpc_work_queue: usize,
}

/// Entry point of `p2pool devchain`: run until Ctrl-C.
pub fn main(args: DevchainArgs) -> Result<ExitCode, DevchainError> {
    let rpc_auth = match (args.rpc_user, args.rpc_password) {
        (Some(user), Some(password)) => RpcAuth::UserPassword { user, password },
        _ => RpcAuth::Cookie,
    };
    let config = DevchainConfig {
        datadir: args.datadir,
        rpc_addr: SocketAddr::new(args.bind, args.rpc_port),
        p2p_addr: SocketAddr::new(args.bind, args.p2p_port),
        rpc_auth,
        rpc_threads: args.rpc_threads,
        rpc_work_queue: args.rpc_work_queue,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(DevchainError::Runtime)?;
    runtime.block_on(async move {
        let devchain = Devchain::start(config).await?;
        match devchain.cookie_path() {
            Some(cookie) => tracing::info!(
                rpc = %devchain.rpc_url(),
                cookie = %cookie.display(),
                p2p = %devchain.p2p_addr(),
                "devchain ready"
            ),
            None => tracing::info!(rpc = %devchain.rpc_url(), p2p = %devchain.p2p_addr(), "devchain ready"),
        }
        tokio::select! {
            signal = tokio::signal::ctrl_c() => signal.map_err(DevchainError::Runtime)?,
            () = devchain.stopped() => {}
        }
        tracing::info!("shutting down");
        devchain.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}
