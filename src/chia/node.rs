//! `p2pool run --chain chia`: the node for Chia harvesters. The worker port serves them (TLS
//! first byte) with signage points from the embedded regtest clock (`--network regtest`) or from
//! a chia full node (`--chia-full-node`, any other network), and its HTTP side serves the status
//! page's Chia view and the JSON API (`super::web`, with `/chia/full_node` when a full node is
//! followed); shares go to the PoSpace share service ([`ServiceSink`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sharechain::pospace_share::ChiaNetwork;
use tokio::sync::watch;

use super::farmer::{self, Farmer, FarmerConfig, ServiceSink};
use super::full_node::{self, ChiaRootConfig, FullNodeConfig, FullNodeLink};
use crate::worker::{
    Found, FoundOutcome, Job, Miner, NoWork, WorkProvider, WorkUpdate, WorkerConfig, WorkerPort,
};

/// Worker port of the Chia kind when `--worker-port` is not given.
pub const DEFAULT_WORKER_PORT: u16 = 9447;

/// Options of the Chia kind (`--chain chia`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChiaRunArgs {
    /// Chia root whose private CA (`config/ssl/ca/private_ca.{crt,key}`) issues the node's
    /// harvester-facing certificate (default: `$CHIA_ROOT`, else `~/.chia/mainnet`, when it
    /// has a CA; else a CA the node creates in its data directory).
    #[arg(long, value_name = "DIR")]
    pub chia_root: Option<PathBuf>,
    /// File with the farmer's 24-word mnemonic (farmer and pool keys as chia derives them).
    /// Default: the first private key of chia's keyring when there is one
    /// (`--chia-keys-root`), else a key generated once in the data directory.
    #[arg(long, value_name = "FILE")]
    pub chia_mnemonic_file: Option<PathBuf>,
    /// chia's keys root, whose `keyring.yaml` gives the farmer and pool keys (its first private
    /// key). Default: `$CHIA_KEYS_ROOT`, else `~/.chia_keys`, when it has a keyring.
    #[arg(long, value_name = "DIR")]
    pub chia_keys_root: Option<PathBuf>,
    /// File holding the passphrase of chia's keyring, when one was set (`chia passphrase set`);
    /// without it, chia's default passphrase.
    #[arg(long, value_name = "FILE")]
    pub chia_keyring_passphrase_file: Option<PathBuf>,
    /// Network id announced to harvesters and required of them and of the full node (default:
    /// the network's name; a harvester's `selected_network` must equal it).
    #[arg(long, value_name = "ID")]
    pub chia_network_id: Option<String>,
    /// A chia full node's peer port (`HOST[:PORT]`, port default: the chia root's
    /// `full_node.port`): signage points come from it, as chia's farmer gets them, instead of
    /// the embedded regtest clock. Needed on every network but regtest; with it, `--network`
    /// left at regtest means the chia root's `selected_network` when the share chain knows that
    /// network, else regtest share-chain rules with signage points of the chia root's network
    /// (a private chia network).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub chia_full_node: Option<String>,
    /// The full node's RPC (`HOST[:PORT]`; default: the full node's host and the chia root's
    /// `full_node.rpc_port`).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub chia_full_node_rpc: Option<String>,
    /// Seconds a connected full node may send no signage point before a warning says so
    /// (default 60).
    #[arg(long, value_name = "SECS")]
    pub chia_full_node_quiet_secs: Option<u64>,
    /// Seconds a peer's PoSpace share on a signage point the chia full node does not know (yet)
    /// is held before it is dropped and its sender penalised (default 60; with
    /// `--chia-full-node` only).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub chia_sp_grace_secs: Option<u64>,
    /// Milliseconds between signage points of the embedded regtest clock (default 2000). Every
    /// node of the share network must use the same: the clock's points depend on it.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub chia_signage_interval_ms: Option<u64>,
    /// A fixed share difficulty instead of the retarget (as Bitcoin's regtest can switch its
    /// retarget off), e.g. to load-test with every proof a share. Its shares form a network of
    /// their own: every node of it must be given the same value.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub chia_share_difficulty: Option<u64>,
}

/// What the Chia node needs from the command line.
#[derive(Debug, Clone)]
pub struct ChiaNodeOptions {
    /// `--network`: the share chain's Chia network (`regtest`, or with a full node `mainnet`,
    /// `testnet11` or `simulator0`; regtest follows the full node's network when the share chain
    /// knows it).
    pub network: String,
    /// `--datadir`; `None` means `~/.p2pool-rs/chia-NETWORK`.
    pub datadir: Option<PathBuf>,
    /// `--address`: the `xch…`/`txch…` address this node's farmer is paid at; starting fails
    /// without it.
    pub address: Option<String>,
    /// Bind address of the worker port harvesters connect to, and its port (`None` means
    /// [`DEFAULT_WORKER_PORT`]).
    pub worker_addr: (std::net::IpAddr, Option<u16>),
    /// The worker port's connection limits and timeouts.
    pub worker: WorkerConfig,
    /// The `--chia-*` options.
    pub chia: ChiaRunArgs,
    /// The share network: listen addresses and bootstrap peers (its names are the PoSpace
    /// kind's; its key and address book live in the data directory).
    pub p2p: crate::p2p::P2pConfig,
}

/// Share-network port of the Chia kind when `--p2p-port` is not given.
pub const DEFAULT_P2P_PORT: u16 = 9448;

/// No Bitcoin work on a Chia node's worker port: stratum and getwork clients are told so.
struct NoBitcoinWork {
    updates: watch::Sender<WorkUpdate>,
}

const NO_BITCOIN: &str = "this node farms Chia: point chia harvesters at this port";

impl WorkProvider for NoBitcoinWork {
    fn network(&self) -> bitcoin::Network {
        bitcoin::Network::Regtest
    }

    fn job(&self, _miner: &Miner) -> Result<Arc<Job>, NoWork> {
        Err(NoWork {
            reason: NO_BITCOIN.to_owned(),
        })
    }

    fn updates(&self) -> watch::Receiver<WorkUpdate> {
        self.updates.subscribe()
    }

    async fn found(&self, _found: Found) -> FoundOutcome {
        FoundOutcome::Rejected {
            reason: NO_BITCOIN.to_owned(),
        }
    }
}

/// A running Chia node.
pub struct ChiaNode {
    /// The farmer endpoint.
    pub farmer: Arc<Farmer>,
    /// The share service (store, share network) behind the farmer endpoint.
    pub sink: ServiceSink,
    /// The link to the chia full node, when signage points come from one.
    pub link: Option<Arc<FullNodeLink>>,
    /// Where the worker port listens.
    pub worker_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ChiaNode {
    /// Starts the node on the current runtime.
    pub async fn start(options: ChiaNodeOptions) -> anyhow::Result<ChiaNode> {
        let full_node = match &options.chia.chia_full_node {
            None => None,
            Some(peer) => Some(full_node_plan(&options, peer)?),
        };
        // With a full node, `--network` left at regtest follows the chia root's network when the
        // share chain knows it; a private chia network (not a share-chain network) keeps the
        // regtest share-chain rules, its signage points coming from the full node.
        let network_name = match &full_node {
            Some(plan)
                if options.network == ChiaNetwork::REGTEST.name
                    && ChiaNetwork::by_name(&plan.network).is_some() =>
            {
                plan.network.clone()
            }
            _ => options.network.clone(),
        };
        let network = ChiaNetwork::by_name(&network_name).with_context(|| {
            format!(
                "unknown Chia network `{network_name}`: use mainnet, testnet11 or simulator0 with \
                 --chia-full-node, or regtest"
            )
        })?;
        anyhow::ensure!(
            network.name == ChiaNetwork::REGTEST.name || full_node.is_some(),
            "network `{}` needs a chia full node's signage points: give --chia-full-node \
             HOST[:PORT], or use --network regtest",
            network.name
        );
        let network: &'static ChiaNetwork = match options.chia.chia_share_difficulty {
            // Leaked once per node start: the network is a constant for the process's life.
            Some(d) => Box::leak(Box::new(network.with_fixed_difficulty(d))),
            None => network,
        };
        let address = options.address.as_deref().with_context(|| {
            format!(
                "--address is required: a {}… payout address",
                super::address::prefix(network)
            )
        })?;
        let payout = super::address::parse_address(address, network)
            .map_err(|e| anyhow::anyhow!("--address: {e}"))?;
        let datadir = match options.datadir.clone() {
            Some(d) => d,
            None => PathBuf::from(std::env::var_os("HOME").context("no HOME")?)
                .join(".p2pool-rs")
                .join(format!("chia-{}", network.name)),
        };
        std::fs::create_dir_all(&datadir)
            .with_context(|| format!("creating {}", datadir.display()))?;
        let keys = farmer::keys::resolve(
            &farmer::keys::KeySources {
                mnemonic_file: options.chia.chia_mnemonic_file.clone(),
                keys_root: options.chia.chia_keys_root.clone(),
                passphrase_file: options.chia.chia_keyring_passphrase_file.clone(),
            },
            &datadir,
        )?;
        let (origin, created) =
            farmer::tls::resolve_ca(options.chia.chia_root.as_deref(), &datadir.join("chia-ca"))?;
        let network_id = match (&options.chia.chia_network_id, &full_node) {
            (Some(id), _) => id.clone(),
            // Regtest rules on a private chia network: the full node's network id.
            (None, Some(plan)) if network.name == ChiaNetwork::REGTEST.name => plan.network.clone(),
            (None, _) => network.name.to_owned(),
        };
        if let Some(plan) = &full_node {
            if plan.network != network_id {
                tracing::warn!(
                    "the chia root's selected_network is {:?}, this node's network id {network_id:?}",
                    plan.network
                );
            }
        }
        let port = options.worker_addr.1.unwrap_or(DEFAULT_WORKER_PORT);
        let listener = tokio::net::TcpListener::bind((options.worker_addr.0, port))
            .await
            .with_context(|| format!("binding the worker port {port}"))?;
        let worker_addr = listener.local_addr()?;
        if created {
            tracing::warn!(ca = %origin.dir().display(), "created a private CA for chia harvesters");
        }
        tracing::info!(
            "harvesters: `chia init -c {}` on the harvester's machine (gives it a certificate from \
             this node's CA), then `chia configure --set-farmer-peer HOST:{}` (or add the node to \
             `harvester.farmer_peers`); its `selected_network` must be `{network_id}`",
            origin.dir().display(),
            worker_addr.port(),
        );
        let store = crate::store::ShareStore::open(&datadir.join("shares.redb"))
            .with_context(|| format!("opening the share store in {}", datadir.display()))?;
        let service =
            crate::shares::PoSpaceService::open_with(&datadir, store, options.p2p, network)
                .await
                .context("starting the PoSpace share service")?;
        let sink = ServiceSink::new(service);
        let farmer = Farmer::new(
            FarmerConfig {
                network,
                network_id: network_id.clone(),
                ca_dir: origin.dir(),
                keys,
                payout_puzzle_hash: payout,
                clock_interval: options
                    .chia
                    .chia_signage_interval_ms
                    .map_or(farmer::clock::REGTEST_INTERVAL, Duration::from_millis),
                server_port: worker_addr.port(),
            },
            Arc::new(sink.clone()),
        )?;
        let provider = Arc::new(NoBitcoinWork {
            updates: watch::channel(WorkUpdate::default()).0,
        });
        let port = WorkerPort::new(provider, options.worker);
        port.set_chia_farmer(farmer.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (link, receiver) = match full_node {
            None => (None, None),
            Some(plan) => {
                let (events, receiver) = farmer::source::channel();
                // Closed until the RPC says the full node is synced.
                farmer.set_gate(Some(format!(
                    "waiting for the state of the chia full node at {}",
                    plan.rpc
                )));
                // Blocks are farmed with the chain's constants from the chia root.
                let constants = full_node::chain_constants(&plan.chia_root, &plan.network)
                    .context("reading the chain's constants from the chia root")?;
                let uplink = farmer.blocks().enable(constants);
                let link = Arc::new(
                    FullNodeLink::start_farming(
                        FullNodeConfig {
                            peer: plan.peer.clone(),
                            rpc: plan.rpc.clone(),
                            chia_root: plan.chia_root.clone(),
                            network_id: network_id.clone(),
                            datadir: datadir.join("chia-full-node"),
                            server_port: worker_addr.port(),
                            poll_every: full_node::POLL_EVERY,
                            quiet_after: plan.quiet_after,
                            sp_grace: plan.sp_grace,
                        },
                        events,
                        farmer.clone(),
                        uplink,
                    )
                    .context("starting the chia full node link")?,
                );
                // Peers' shares wait for their signage point to be known to the full node.
                sink.service().set_context(link.oracle());
                tracing::info!(
                    full_node = %plan.peer,
                    rpc = %plan.rpc,
                    chia_root = %plan.chia_root.display(),
                    "signage points from the chia full node"
                );
                (Some(link), Some(receiver))
            }
        };
        let link_metrics = link.clone();
        let mut extra = axum::Router::new();
        if let Some(link) = link.clone() {
            let service = sink.service().clone();
            extra = extra.route(
                "/chia/full_node",
                axum::routing::get(move || async move {
                    axum::Json(FullNodeView {
                        link: link.status(),
                        held_shares: service.context_counts(),
                    })
                }),
            );
        }
        let web = super::web::ChiaWeb::with_metrics(
            farmer.clone(),
            sink.service().clone(),
            Arc::new(move || {
                link_metrics
                    .as_ref()
                    .map(|l| full_node_metrics(&l.status()))
                    .unwrap_or_default()
            }),
        );
        // A farmed block records the PPLNS split of its pool part (weakly held: the web side
        // holds the farmer).
        let split_of = Arc::downgrade(&web);
        farmer.blocks().set_split(Arc::new(move || {
            split_of
                .upgrade()
                .map(|w| w.block_split())
                .unwrap_or_default()
        }));
        let http = super::web::router_with(web, extra);
        let serving = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = port.serve(listener, http, shutdown).await {
                tracing::error!(error = %e, "worker port stopped");
            }
        });
        let source = match receiver {
            None => tokio::spawn(farmer.clone().run_clock()),
            Some(receiver) => tokio::spawn(farmer.clone().run_source(receiver)),
        };
        tracing::info!(worker = %worker_addr, "chia node running");
        Ok(ChiaNode {
            farmer,
            sink,
            link,
            worker_addr,
            stop: Some(stop),
            tasks: vec![serving, source],
        })
    }

    /// Stops serving.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Some(link) = &self.link {
            link.stop();
        }
        self.sink.service().shutdown().await;
    }
}

/// `/chia/full_node`: the link's state and the peers' shares held for their signage point.
#[derive(serde::Serialize)]
struct FullNodeView {
    #[serde(flatten)]
    link: full_node::LinkStatus,
    held_shares: crate::shares::ContextCounts,
}

/// Where the full node is and what the chia root says.
#[derive(Debug, Clone)]
struct FullNodePlan {
    peer: String,
    rpc: String,
    chia_root: PathBuf,
    /// The chia root's `selected_network`.
    network: String,
    quiet_after: Duration,
    sp_grace: Duration,
}

/// `HOST[:PORT]` with `default_port` when no port is given (an IPv6 host in brackets).
fn with_port(addr: &str, default_port: u16) -> String {
    let has_port = match addr.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        addr.to_owned()
    } else {
        format!("{addr}:{default_port}")
    }
}

fn host_of(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    }
}

fn full_node_plan(options: &ChiaNodeOptions, peer: &str) -> anyhow::Result<FullNodePlan> {
    let chia_root = options
        .chia
        .chia_root
        .clone()
        .or_else(farmer::tls::default_chia_root)
        .context("--chia-full-node needs a chia root (--chia-root, or $CHIA_ROOT)")?;
    let config = ChiaRootConfig::load(&chia_root)
        .with_context(|| format!("reading the chia root {}", chia_root.display()))?;
    let peer = with_port(peer, config.full_node_port);
    let rpc = match &options.chia.chia_full_node_rpc {
        Some(rpc) => with_port(rpc, config.full_node_rpc_port),
        None => format!("{}:{}", host_of(&peer), config.full_node_rpc_port),
    };
    let quiet_after = options
        .chia
        .chia_full_node_quiet_secs
        .map_or(full_node::QUIET_AFTER, Duration::from_secs);
    let sp_grace = options
        .chia
        .chia_sp_grace_secs
        .map_or(full_node::signage::DEFAULT_GRACE, Duration::from_secs);
    Ok(FullNodePlan {
        peer,
        rpc,
        chia_root,
        network: config.selected_network,
        quiet_after,
        sp_grace,
    })
}

/// The full node link's figures in Prometheus text format.
fn full_node_metrics(status: &full_node::LinkStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let up = u8::from(status.link == "connected");
    let _ = writeln!(
        out,
        "# HELP p2pool_chia_full_node_up 1 while the link to the chia full node is up.\n\
         # TYPE p2pool_chia_full_node_up gauge\n\
         p2pool_chia_full_node_up {up}\n\
         # HELP p2pool_chia_full_node_connections_total Handshakes with the chia full node.\n\
         # TYPE p2pool_chia_full_node_connections_total counter\n\
         p2pool_chia_full_node_connections_total {}\n\
         # HELP p2pool_chia_full_node_signage_points_total Signage points from the chia full node.\n\
         # TYPE p2pool_chia_full_node_signage_points_total counter\n\
         p2pool_chia_full_node_signage_points_total {}",
        status.connections, status.signage_points
    );
    if let Some(synced) = status.synced {
        let _ = writeln!(
            out,
            "# HELP p2pool_chia_full_node_synced 1 when the chia full node says it is synced.\n\
             # TYPE p2pool_chia_full_node_synced gauge\n\
             p2pool_chia_full_node_synced {}",
            u8::from(synced)
        );
    }
    if let Some(h) = status.peak_height {
        let _ = writeln!(
            out,
            "# HELP p2pool_chia_full_node_peak_height The chia full node's peak height.\n\
             # TYPE p2pool_chia_full_node_peak_height gauge\n\
             p2pool_chia_full_node_peak_height {h}"
        );
    }
    if let Some(d) = status.difficulty {
        let _ = writeln!(
            out,
            "# HELP p2pool_chia_full_node_difficulty The chain's block difficulty.\n\
             # TYPE p2pool_chia_full_node_difficulty gauge\n\
             p2pool_chia_full_node_difficulty {d}"
        );
    }
    if let Some(ssi) = status.sub_slot_iters {
        let _ = writeln!(
            out,
            "# HELP p2pool_chia_full_node_sub_slot_iters The chain's sub-slot iterations.\n\
             # TYPE p2pool_chia_full_node_sub_slot_iters gauge\n\
             p2pool_chia_full_node_sub_slot_iters {ssi}"
        );
    }
    out
}

/// Runs the Chia node until Ctrl-C.
pub fn main(options: ChiaNodeOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let node = ChiaNode::start(options).await?;
        tokio::signal::ctrl_c().await?;
        tracing::info!("shutting down");
        node.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_default_ports() {
        assert_eq!(with_port("node", 8444), "node:8444");
        assert_eq!(with_port("node:18444", 8444), "node:18444");
        assert_eq!(with_port("127.0.0.1", 8555), "127.0.0.1:8555");
        assert_eq!(with_port("[::1]:9", 8444), "[::1]:9");
        assert_eq!(with_port("[::1]", 8444), "[::1]:8444");
        assert_eq!(host_of("node:18444"), "node");
        assert_eq!(host_of("node"), "node");
    }
}
