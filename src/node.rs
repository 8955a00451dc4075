//! The pool node: starts and supervises its parts and shuts them down cleanly.
//!
//! ```text
//! [devchain (regtest, no --bitcoind-rpc)] → Bitcoind (RPC, P2P link, templates, submitter)
//!   templates ──► WorkBuilder ◄── share chain (tracker)
//!   WorkBuilder ──► WorkerPort (stratum + getwork + HTTP API on one port)
//!   found blocks ──► BlockSubmitter (RPC + P2P)
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bitcoin::{Block, ScriptBuf};
use sharechain::params::NetworkParams;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::bitcoind::{Backoff, Bitcoind, BitcoindArgs, TemplateConfig};
use crate::submit::{BlockSubmitter, SubmitConfig};
use crate::work::{BlockSink, LocalChain, WorkBuilder};
use crate::worker::{WorkerConfig, WorkerPort};

/// Everything the node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub params: &'static NetworkParams,
    /// Where the node keeps its data (the embedded chain's too); `None`: nothing kept.
    pub datadir: Option<PathBuf>,
    /// The node operator's payout script (used for `--fee` and credential-less getwork).
    pub operator: Option<ScriptBuf>,
    /// Percent of shares paying the operator instead of the miner.
    pub fee_percent: f64,
    pub worker_addr: SocketAddr,
    pub bitcoind: BitcoindArgs,
    pub worker: WorkerConfig,
}

impl NodeConfig {
    /// True when the node runs its own regtest chain (regtest without `--bitcoind-rpc`).
    pub fn embedded_chain(&self) -> bool {
        self.params.network == bitcoin::Network::Regtest && self.bitcoind.rpc_url.is_none()
    }
}

impl BlockSink for BlockSubmitter {
    fn submit_block(&self, block: Block) {
        let submitter = self.clone();
        tokio::spawn(async move {
            let outcome = submitter.submit(block).await;
            tracing::info!(hash = %outcome.hash, delivered = outcome.delivered(), "block submission finished");
        });
    }
}

/// The work builder of a running node.
pub type NodeWork = WorkBuilder<LocalChain, BlockSubmitter>;

/// A running node.
#[derive(Debug)]
pub struct Node {
    worker_addr: SocketAddr,
    work: Arc<NodeWork>,
    bitcoind: Bitcoind,
    #[cfg(feature = "devchain")]
    devchain: Option<crate::devchain::Devchain>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Node {
    /// Starts the node: the embedded chain if wanted, bitcoind, work, the worker port.
    pub async fn start(mut config: NodeConfig) -> anyhow::Result<Node> {
        #[cfg(feature = "devchain")]
        let devchain = if config.embedded_chain() {
            let mut dc = crate::devchain::DevchainConfig::ephemeral();
            dc.datadir = config.datadir.as_ref().map(|d| d.join("devchain"));
            if let Some(d) = &dc.datadir {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            }
            let chain = crate::devchain::Devchain::start(dc)
                .await
                .context("starting the embedded regtest chain")?;
            let (user, password) = chain.rpc_auth();
            tracing::info!(
                rpc = %chain.rpc_url(),
                p2p = %chain.p2p_addr(),
                "no --bitcoind-rpc on regtest: running the embedded regtest chain (Bitcoin Core's validation engine)"
            );
            config.bitcoind.rpc_url = Some(chain.rpc_url());
            config.bitcoind.rpc_user = Some(user.to_owned());
            config.bitcoind.rpc_password = Some(password.to_owned());
            config.bitcoind.rpc_cookie = None;
            config.bitcoind.p2p_addr = Some(chain.p2p_addr());
            Some(chain)
        } else {
            None
        };
        #[cfg(not(feature = "devchain"))]
        if config.embedded_chain() {
            anyhow::bail!("this build has no embedded regtest chain: pass --bitcoind-rpc");
        }

        let params = config.params;
        let bitcoind = Bitcoind::connect(
            &config.bitcoind,
            params.network,
            Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            TemplateConfig::default(),
            SubmitConfig::default(),
        )
        .await
        .context("connecting to bitcoind")?;
        tracing::info!(chain = %bitcoind.info.chain, blocks = bitcoind.info.blocks, "bitcoind ready");

        let chain = Arc::new(LocalChain::new(sharechain::new_tracker(params)));
        let work = Arc::new(
            WorkBuilder::new(params, chain, Arc::new(bitcoind.submitter.clone()))
                .with_fee(config.operator.clone(), config.fee_percent),
        );
        work.set_template(bitcoind.templates.current());

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut templates = bitcoind.templates.templates();
        let w = Arc::clone(&work);
        let mut stop = shutdown_rx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    changed = templates.changed() => {
                        if changed.is_err() { break; }
                        let t = templates.borrow_and_update().clone();
                        w.set_template(t);
                    }
                    _ = stop.changed() => break,
                }
            }
        });

        let listener = TcpListener::bind(config.worker_addr)
            .await
            .with_context(|| format!("binding the worker port {}", config.worker_addr))?;
        let worker_addr = listener.local_addr()?;
        let port = WorkerPort::new(Arc::clone(&work), config.worker.clone());
        let web = crate::http::WebState::new(
            Arc::clone(&work),
            port.clone(),
            &bitcoind,
            config.datadir.as_deref(),
            config.fee_percent,
        );
        tasks.spawn(
            web.clone()
                .run_sampler(Default::default(), shutdown_rx.clone()),
        );
        let http = crate::http::router(web);
        let mut stop = shutdown_rx;
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = port.serve(listener, http, shutdown).await {
                tracing::error!(%e, "worker port stopped");
            }
        });
        tracing::info!(%worker_addr, network = params.name, "worker port (stratum, getwork, HTTP) listening");
        Ok(Node {
            worker_addr,
            work,
            bitcoind,
            #[cfg(feature = "devchain")]
            devchain,
            shutdown,
            tasks,
        })
    }

    /// The worker port's address.
    pub fn worker_addr(&self) -> SocketAddr {
        self.worker_addr
    }

    /// The work builder (and through it the share chain).
    pub fn work(&self) -> &Arc<NodeWork> {
        &self.work
    }

    /// The bitcoind side.
    pub fn bitcoind(&self) -> &Bitcoind {
        &self.bitcoind
    }

    /// The embedded regtest chain, when running one.
    #[cfg(feature = "devchain")]
    pub fn devchain(&self) -> Option<&crate::devchain::Devchain> {
        self.devchain.as_ref()
    }

    /// Stops every task and the embedded chain.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while tokio::time::timeout(Duration::from_secs(10), self.tasks.join_next())
            .await
            .ok()
            .flatten()
            .is_some()
        {}
        self.tasks.abort_all();
        #[cfg(feature = "devchain")]
        if let Some(chain) = self.devchain.take() {
            if let Err(e) = chain.shutdown().await {
                tracing::warn!(%e, "embedded chain shutdown");
            }
        }
    }
}
