//! `p2pool run --chain chia --network regtest`: the node for Chia harvesters. The worker port
//! serves them (TLS first byte) with the embedded regtest signage clock, and its HTTP side
//! serves `/chia/harvesters`, `/chia/shares` and `/chia/signage_points`; shares go to an
//! in-process PoSpace tracker ([`TrackerSink`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sharechain::pospace_share::ChiaNetwork;
use tokio::sync::watch;

use super::farmer::{self, Farmer, FarmerConfig, FarmerKeys, ServiceSink};
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
    /// Default: a key generated once in the data directory.
    #[arg(long, value_name = "FILE")]
    pub chia_mnemonic_file: Option<PathBuf>,
    /// Network id announced to harvesters and required of them (default: the network's name;
    /// a harvester's `selected_network` must equal it).
    #[arg(long, value_name = "ID")]
    pub chia_network_id: Option<String>,
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
    pub network: String,
    pub datadir: Option<PathBuf>,
    pub address: Option<String>,
    pub worker_addr: (std::net::IpAddr, Option<u16>),
    pub worker: WorkerConfig,
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
    /// Where the worker port listens.
    pub worker_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ChiaNode {
    /// Starts the node on the current runtime.
    pub async fn start(options: ChiaNodeOptions) -> anyhow::Result<ChiaNode> {
        let network = ChiaNetwork::by_name(&options.network).with_context(|| {
            format!(
                "unknown Chia network `{}`: use regtest (mainnet, testnet11, simulator0 need a \
                 chia full node's signage points, not supported yet)",
                options.network
            )
        })?;
        anyhow::ensure!(
            network.name == ChiaNetwork::REGTEST.name,
            "network `{}` needs a chia full node's signage points (not supported yet): use \
             --network regtest",
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
        let keys = match &options.chia.chia_mnemonic_file {
            Some(file) => FarmerKeys::from_mnemonic_file(file)?,
            None => FarmerKeys::load_or_generate(&datadir)?,
        };
        let (origin, created) =
            farmer::tls::resolve_ca(options.chia.chia_root.as_deref(), &datadir.join("chia-ca"))?;
        let network_id = options
            .chia
            .chia_network_id
            .clone()
            .unwrap_or_else(|| network.name.to_owned());
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
                network_id,
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
        let http = farmer::router(farmer.clone()).route(
            "/",
            axum::routing::get(|| async { "p2pool-rs: Chia farmer endpoint\n" }),
        );
        let serving = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = port.serve(listener, http, shutdown).await {
                tracing::error!(error = %e, "worker port stopped");
            }
        });
        let clock = tokio::spawn(farmer.clone().run_clock());
        tracing::info!(worker = %worker_addr, "chia node running");
        Ok(ChiaNode {
            farmer,
            sink,
            worker_addr,
            stop: Some(stop),
            tasks: vec![serving, clock],
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
        self.sink.service().shutdown().await;
    }
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
