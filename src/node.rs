//! The pool node: starts and supervises its parts and shuts them down cleanly.
//!
//! ```text
//! [devchain (regtest, no --bitcoind-rpc)] → Bitcoind (RPC, P2P link, templates, submitter)
//!   templates ──► ShareService.set_tip, WorkBuilder ◄── ShareService (tracker, store, libp2p)
//!   best share changes ──► WorkBuilder (new jobs)
//!   WorkBuilder ──► WorkerPort (stratum + getwork + HTTP API on one port)
//!   found blocks ──► BlockSubmitter (RPC + P2P) and peers; peers' blocks ──► BlockSubmitter
//!   peers' bitcoin tips ──► template refresh; our new tips ──► peers
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
pub use crate::delivery::{FoundBlocks, NodeDelivery, NodeWork};
use crate::p2p::P2pConfig;
use crate::shares::ShareService;
use crate::submit::gate::{BlockGate, Origin};
use crate::submit::SubmitConfig;
use crate::work::WorkBuilder;
use crate::worker::{WorkerConfig, WorkerPort};

/// Everything the node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The share chain's network.
    pub params: &'static NetworkParams,
    /// Where the node keeps its data (the embedded chain's too); `None`: nothing kept.
    pub datadir: Option<PathBuf>,
    /// The node operator's payout script (used for `--fee` and credential-less getwork).
    pub operator: Option<ScriptBuf>,
    /// Percent of shares paying the operator instead of the miner.
    pub fee_percent: f64,
    /// Where the worker port (stratum, getwork, status page, API) listens.
    pub worker_addr: SocketAddr,
    /// How to reach bitcoind (the `--bitcoind-*` options).
    pub bitcoind: BitcoindArgs,
    /// Settings of the worker port: connection limits, timeouts, vardiff, getwork.
    pub worker: WorkerConfig,
    /// The share network (listen addresses, bootstrap peers, limits).
    pub p2p: P2pConfig,
    /// A second port serving only the status page and API (they are always on the worker port).
    pub web_addr: Option<SocketAddr>,
}

impl NodeConfig {
    /// True when the node runs its own regtest chain (regtest without `--bitcoind-rpc`).
    pub fn embedded_chain(&self) -> bool {
        self.params.network == bitcoin::Network::Regtest && self.bitcoind.rpc_url.is_none()
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    worker_addr: SocketAddr,
    work: Arc<NodeWork>,
    shares: ShareService,
    /// Keeps a temporary data directory alive as long as the node.
    _tempdir: Option<tempfile::TempDir>,
    bitcoind: Bitcoind,
    #[cfg(feature = "devchain")]
    devchain: Option<crate::devchain::Devchain>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Node {
    /// Starts the node: the embedded chain if wanted, bitcoind, work, the worker port.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Node> {
        #[cfg(feature = "devchain")]
        let mut config = config;
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

        // The share chain: store and network in the datadir (a temporary one without).
        let tempdir = match &config.datadir {
            Some(_) => None,
            None => Some(tempfile::tempdir().context("creating a temporary data directory")?),
        };
        let datadir = config
            .datadir
            .clone()
            .unwrap_or_else(|| tempdir.as_ref().expect("made above").path().to_owned());
        let shares = ShareService::open(&datadir, config.p2p.clone())
            .await
            .context("starting the share chain and network")?;
        let peers = shares.p2p().clone();
        tracing::info!(peer_id = %peers.local_peer_id(), listen = ?peers.listen_addrs().await, "share network up");
        let blocks = BlockGate::new(NodeDelivery {
            submitter: bitcoind.submitter.clone(),
            peers: peers.clone(),
        });
        let work = Arc::new(
            WorkBuilder::new(params, Arc::new(shares.clone()), Arc::new(blocks.clone()))
                .with_fee(config.operator.clone(), config.fee_percent),
        );
        let first = bitcoind.templates.current();
        blocks.set_tip(first.previous_block_hash);
        shares.set_tip(Some(first.previous_block_hash)).await;
        work.set_template(first);

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(follow_templates(
            bitcoind.templates.templates(),
            blocks.clone(),
            Arc::clone(&work),
            shares.clone(),
            bitcoind.rpc.clone(),
            shutdown_rx.clone(),
        ));
        tasks.spawn(follow_best(
            shares.subscribe_best(),
            Arc::clone(&work),
            shutdown_rx.clone(),
        ));
        tasks.spawn(submit_peer_blocks(
            peers.subscribe_blocks(),
            blocks.clone(),
            shutdown_rx.clone(),
        ));
        tasks.spawn(refresh_on_peer_tips(
            peers.subscribe_tips(),
            bitcoind.templates.refresher(),
            shutdown_rx.clone(),
        ));

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
        let peer_list = Arc::new(PeerList::default());
        web.set_peers(peer_list.clone());
        tasks.spawn(track_peers(shares.clone(), peer_list, shutdown_rx.clone()));
        if let Some(addr) = config.web_addr {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the web port {addr}"))?;
            tracing::info!(web_addr = %listener.local_addr()?, "status page and API on their own port too");
            let router = crate::http::router(web.clone());
            let mut stop = shutdown_rx.clone();
            tasks.spawn(async move {
                let shutdown = async move {
                    let _ = stop.changed().await;
                };
                if let Err(e) = crate::http::serve(listener, router, shutdown).await {
                    tracing::error!(%e, "web port stopped");
                }
            });
        }
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
            shares,
            _tempdir: tempdir,
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

    /// The share chain and network.
    pub fn shares(&self) -> &ShareService {
        &self.shares
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
        self.shares.shutdown().await;
        #[cfg(feature = "devchain")]
        if let Some(chain) = self.devchain.take() {
            if let Err(e) = chain.shutdown().await {
                tracing::warn!(%e, "embedded chain shutdown");
            }
        }
    }
}

/// New templates: tell the share chain the new tip, rebuild work, and announce the new Bitcoin
/// tip to peers so they switch before their own bitcoind tells them.
async fn follow_templates(
    mut templates: watch::Receiver<Arc<crate::bitcoind::BlockTemplate>>,
    blocks: FoundBlocks,
    work: Arc<NodeWork>,
    shares: ShareService,
    rpc: crate::bitcoind::RpcClient,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_prev = None;
    loop {
        tokio::select! {
            changed = templates.changed() => {
                if changed.is_err() { break; }
                let t = templates.borrow_and_update().clone();
                let prev = t.previous_block_hash;
                let new_tip = last_prev != Some(prev);
                blocks.set_tip(prev);
                // Miners first: a clean job for the new height must not wait behind the share
                // worker's queue. The share chain's view of the tip follows; a best share that
                // changes with it reaches the miners through `follow_best`.
                work.set_template(t);
                if new_tip {
                    shares.set_tip(Some(prev)).await;
                }
                if new_tip {
                    last_prev = Some(prev);
                    match rpc.call::<String>("getblockheader", serde_json::json!([prev.to_string(), false])).await {
                        Ok(hex) => match hex::decode(&hex).ok().and_then(|b| bitcoin::consensus::deserialize::<bitcoin::block::Header>(&b).ok()) {
                            Some(header) => shares.p2p().publish_tip(&header).await,
                            None => tracing::debug!("bitcoind sent an undecodable header"),
                        },
                        Err(e) => tracing::debug!(%e, "no header to announce"),
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// A new best share: new jobs.
async fn follow_best(
    mut best: watch::Receiver<Option<sharechain::ShareHash>>,
    work: Arc<NodeWork>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = best.changed() => {
                if changed.is_err() { break; }
                best.borrow_and_update();
                work.refresh_best();
            }
            _ = stop.changed() => break,
        }
    }
}

/// Blocks found by peers' miners pay us too: hand them to our bitcoind as well.
async fn submit_peer_blocks(
    mut blocks: tokio::sync::broadcast::Receiver<(libp2p::PeerId, Vec<u8>)>,
    gate: FoundBlocks,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            got = blocks.recv() => match got {
                Ok((peer, bytes)) => match bitcoin::consensus::deserialize::<Block>(&bytes) {
                    Ok(block) => {
                        tracing::debug!(%peer, hash = %block.block_hash(), "block from a peer");
                        gate.offer(block, Origin::Peer);
                    }
                    Err(e) => tracing::debug!(%peer, %e, "undecodable block from a peer"),
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!(n, "missed peer blocks"),
                Err(_) => break,
            },
            _ = stop.changed() => break,
        }
    }
}

/// A peer saw a new Bitcoin block: ask bitcoind for a template now.
async fn refresh_on_peer_tips(
    mut tips: tokio::sync::broadcast::Receiver<(libp2p::PeerId, bitcoin::block::Header)>,
    refresh: crate::bitcoind::TemplateRefresh,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            got = tips.recv() => match got {
                Ok(_) => refresh.refresh(),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => refresh.refresh(),
                Err(_) => break,
            },
            _ = stop.changed() => break,
        }
    }
}

/// The share network's peers as the status page shows them, refreshed in the background (the
/// network answers asynchronously; the page reads synchronously).
#[derive(Debug, Default)]
struct PeerList(parking_lot::RwLock<Vec<crate::http::Peer>>);

impl crate::http::PeerSource for PeerList {
    fn peers(&self) -> Vec<crate::http::Peer> {
        self.0.read().clone()
    }
}

async fn track_peers(shares: ShareService, list: Arc<PeerList>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let peers = shares.p2p().peers().await;
                *list.0.write() = peers
                    .into_iter()
                    .filter(|p| p.ready)
                    .map(|p| crate::http::Peer {
                        addr: p.addr.to_string(),
                        incoming: p.incoming,
                        version: p.agent_version.unwrap_or_default(),
                    })
                    .collect();
            }
            _ = stop.changed() => break,
        }
    }
}
