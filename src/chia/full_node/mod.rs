//! The node's link to a real chia full node, as chia's own farmer has one: signage points from
//! the full node's peer port become the farmer endpoint's source
//! ([`crate::chia::farmer::source`]), and its RPC tells the peak, difficulty and sync state.
//!
//! - [`config`]: the chia root's `config.yaml` (network, ports).
//! - [`peer`]: one peer connection (TLS with a `chia_ca` certificate, websocket, handshake,
//!   keepalive, `new_signage_point`).
//! - [`rpc`]: the RPC client (`get_blockchain_state`, `get_network_info`,
//!   `get_recent_signage_point_or_eos`, `get_blocks`, …).
//! - [`signage`]: the signage points the full node knows ([`SignageOracle`]), against which
//!   peers' PoSpace shares are checked.
//! - [`farming`]: the outcome of the node's block attempts, from the RPC.
//!
//! [`FullNodeLink::start`] runs three tasks: the peer connection, reconnecting with back-off (one
//! warning per outage), the RPC poll, which closes the farmer endpoint's gate on proofs while
//! the full node is not synced, and the oracle's RPC look-ups of signage points.
//! [`FullNodeLink::start_farming`] also farms blocks: the farmer endpoint's
//! `declare_proof_of_space` and `signed_values` go up the peer connection, the full node's
//! `request_signed_values` come down to it, and a fourth task follows the attempts' outcomes.

pub mod config;
pub mod farming;
pub mod peer;
pub mod rpc;
pub mod signage;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use crate::chia::farmer::blocks::Uplink;
use crate::chia::farmer::source::{SourceEvent, SourceSender};
use crate::chia::farmer::Farmer;
use crate::chia::protocol as p;
use crate::chia::ssl::{self, TlsError};

pub use config::{chain_constants, ChiaRootConfig, ConfigError};
pub use peer::LinkError;
pub use rpc::{BlockchainState, RpcClient, RpcError};
pub use signage::{OracleCounts, SignageOracle};

/// First wait before reconnecting; doubled per failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The RPC is polled this often.
pub const POLL_EVERY: Duration = Duration::from_secs(5);
/// A connected full node sending no signage point this long is reported.
pub const QUIET_AFTER: Duration = Duration::from_secs(60);

/// What the link needs.
#[derive(Debug, Clone)]
pub struct FullNodeConfig {
    /// `HOST:PORT` of the full node's peer port.
    pub peer: String,
    /// `HOST:PORT` of its RPC.
    pub rpc: String,
    /// The chia root: `chia_ca` for the peer certificate, the private CA and full-node
    /// certificate for the RPC.
    pub chia_root: PathBuf,
    /// Network id required of the full node.
    pub network_id: String,
    /// Where the node's `chia_ca` certificate is kept.
    pub datadir: PathBuf,
    /// Port announced in the handshake (the worker port).
    pub server_port: u16,
    /// How often the RPC is polled.
    pub poll_every: Duration,
    /// After how long without signage points a connected full node is reported.
    pub quiet_after: Duration,
    /// How long a peer's share may wait for its signage point to be known.
    pub sp_grace: Duration,
}

/// Why the link could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A certificate or key.
    #[error("full node link TLS: {0}")]
    Tls(#[from] TlsError),
}

/// The link's state, as the API shows it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LinkStatus {
    /// `HOST:PORT` of the full node's peer port.
    pub peer: String,
    /// `HOST:PORT` of its RPC.
    pub rpc: String,
    /// `connecting`, `connected`, `down` or `refused` (another network).
    pub link: &'static str,
    /// Why the last connection ended or failed.
    pub last_error: Option<String>,
    /// Successful handshakes so far.
    pub connections: u64,
    /// Unix seconds of the current connection's handshake.
    pub connected_since: Option<u64>,
    /// Signage points received (repeats dropped).
    pub signage_points: u64,
    /// Unix seconds of the latest one.
    pub last_signage_point_at: Option<u64>,
    /// The full node's network (`get_network_info`).
    pub network: Option<String>,
    /// From `get_blockchain_state`.
    pub peak_height: Option<u32>,
    /// The chain's block difficulty (`get_blockchain_state`; `None` before its first answer).
    pub difficulty: Option<u64>,
    /// The chain's sub-slot iterations (`get_blockchain_state`; `None` before its first answer).
    pub sub_slot_iters: Option<u64>,
    /// Whether the full node believes it is at the network's tip (`None` before the first answer).
    pub synced: Option<bool>,
    /// Whether the full node is in its initial sync, when proofs are refused (`None` before the
    /// first answer).
    pub sync_mode: Option<bool>,
    /// Full nodes the full node is connected to (`get_connections`).
    pub full_node_peers: Option<usize>,
    /// The last RPC error, cleared by the next answer.
    pub rpc_error: Option<String>,
    /// Unix seconds of the last RPC answer.
    pub rpc_updated_at: Option<u64>,
    /// The signage points known to check peers' shares against.
    pub signage_oracle: OracleCounts,
    /// Set while a connected full node sends no signage point (the warning logged).
    pub quiet: Option<String>,
}

/// State shared by the link's tasks.
pub(crate) struct Shared {
    config: FullNodeConfig,
    events: SourceSender,
    status: Mutex<LinkStatus>,
    numbers: AtomicU64,
    last_signage_point: Mutex<Option<Instant>>,
    oracle: Arc<SignageOracle>,
    /// The farmer endpoint, when the link farms blocks.
    farmer: Option<Arc<Farmer>>,
}

impl Shared {
    fn next_number(&self) -> u64 {
        self.numbers.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a new signage point; returns the one it replaces (reverted), if any.
    fn signage_point_received(&self, m: &p::NewSignagePoint) -> Option<[u8; 32]> {
        let reverted = self.oracle.record(m);
        *self.last_signage_point.lock() = Some(Instant::now());
        let mut status = self.status.lock();
        status.signage_points += 1;
        status.last_signage_point_at = Some(crate::chia::farmer::now_secs());
        // The signage point's figures are as fresh as the RPC's.
        status.peak_height = Some(m.peak_height);
        status.difficulty = Some(m.difficulty);
        status.sub_slot_iters = Some(m.sub_slot_iters);
        reverted
    }

    fn last_signage_point(&self) -> Option<Instant> {
        *self.last_signage_point.lock()
    }

    fn peak_text(&self) -> String {
        let status = self.status.lock();
        let peak = match status.peak_height {
            Some(h) => format!("peak {h}"),
            None => "no peak".to_owned(),
        };
        match status.difficulty {
            Some(d) => format!("{peak}, difficulty {d}"),
            None => peak,
        }
    }
}

/// A running link.
pub struct FullNodeLink {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for FullNodeLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FullNodeLink")
            .field("peer", &self.shared.config.peer)
            .finish_non_exhaustive()
    }
}

/// The node's certificate for full nodes' peer ports, issued once from the chia root's public
/// `chia_ca` and kept in `dir` (`public_farmer.{crt,key}`): a full node keys peers by
/// certificate, so the node needs its own, not the chia root farmer's.
pub fn peer_identity(chia_root: &Path, dir: &Path) -> Result<ssl::ClientIdentity, TlsError> {
    let ca_dir = chia_root.join("config/ssl/ca");
    let (ca_crt, ca_key) = (ca_dir.join("chia_ca.crt"), ca_dir.join("chia_ca.key"));
    let ca = ssl::read_cert(&ca_crt)?;
    let (crt, key) = (dir.join("public_farmer.crt"), dir.join("public_farmer.key"));
    if crt.exists() && key.exists() {
        return Ok(ssl::ClientIdentity {
            ca,
            cert: ssl::read_cert(&crt)?,
            key: ssl::read_key(&key)?,
        });
    }
    let (cert, private) = ssl::issue_node_cert(&ca_crt, &ssl::read_text(&ca_key)?, &ca)?;
    ssl::write_pem_pair(&crt, &key, &cert, &private)?;
    tracing::info!(cert = %crt.display(), "issued the node's certificate for chia full nodes from chia_ca");
    Ok(ssl::ClientIdentity {
        ca,
        cert,
        key: private,
    })
}

/// The chia root's identity for the full node's RPC (its private CA and private full-node
/// certificate, as chia's RPC clients use).
pub fn rpc_identity(chia_root: &Path) -> Result<ssl::ClientIdentity, TlsError> {
    let ssl_dir = chia_root.join("config/ssl");
    Ok(ssl::ClientIdentity {
        ca: ssl::read_cert(&ssl_dir.join("ca/private_ca.crt"))?,
        cert: ssl::read_cert(&ssl_dir.join("full_node/private_full_node.crt"))?,
        key: ssl::read_key(&ssl_dir.join("full_node/private_full_node.key"))?,
    })
}

impl FullNodeLink {
    /// Starts the link on the current runtime: signage points and the gate go to `events`.
    pub fn start(config: FullNodeConfig, events: SourceSender) -> Result<FullNodeLink, StartError> {
        Self::start_with(config, events, None)
    }

    /// [`FullNodeLink::start`], farming blocks for `farmer`: `uplink` (from
    /// [`crate::chia::farmer::blocks::Blocks::enable`]) carries its messages to the full node.
    pub fn start_farming(
        config: FullNodeConfig,
        events: SourceSender,
        farmer: Arc<Farmer>,
        uplink: tokio::sync::mpsc::Receiver<Uplink>,
    ) -> Result<FullNodeLink, StartError> {
        Self::start_with(config, events, Some((farmer, uplink)))
    }

    fn start_with(
        config: FullNodeConfig,
        events: SourceSender,
        farming: Option<(Arc<Farmer>, tokio::sync::mpsc::Receiver<Uplink>)>,
    ) -> Result<FullNodeLink, StartError> {
        let (farmer, uplink) = match farming {
            Some((f, u)) => (Some(f), Some(u)),
            None => (None, None),
        };
        let peer_id = peer_identity(&config.chia_root, &config.datadir)?;
        let peer_tls = Arc::new(ssl::client_config(
            &peer_id.ca,
            &peer_id.cert,
            &peer_id.key,
        )?);
        let rpc_id = rpc_identity(&config.chia_root)?;
        let rpc_tls = Arc::new(ssl::client_config(&rpc_id.ca, &rpc_id.cert, &rpc_id.key)?);
        let rpc = RpcClient::new(config.rpc.clone(), rpc_tls);
        let (oracle, lookups) = SignageOracle::new(config.sp_grace);
        let shared = Arc::new(Shared {
            status: Mutex::new(LinkStatus {
                peer: config.peer.clone(),
                rpc: config.rpc.clone(),
                link: "connecting",
                ..LinkStatus::default()
            }),
            config,
            events,
            numbers: AtomicU64::new(0),
            last_signage_point: Mutex::new(None),
            oracle: oracle.clone(),
            farmer: farmer.clone(),
        });
        let peer_task = tokio::spawn(run_peer(shared.clone(), peer_tls, rpc.clone(), uplink));
        let events = shared.events.clone();
        let lookup_task = tokio::spawn(signage::run_lookups(
            oracle,
            rpc.clone(),
            lookups,
            move |sp| {
                // Full queue: the farmer is busy; the point stays announced, harmlessly.
                let _ = events.try_send(SourceEvent::Reverted(sp));
            },
        ));
        let mut tasks = vec![peer_task, lookup_task];
        if let Some(farmer) = farmer {
            let every = shared.config.poll_every;
            tasks.push(tokio::spawn(farming::run_outcomes(
                farmer,
                rpc.clone(),
                every,
            )));
        }
        tasks.push(tokio::spawn(run_rpc(shared.clone(), rpc)));
        Ok(FullNodeLink { shared, tasks })
    }

    /// The link's state now.
    pub fn status(&self) -> LinkStatus {
        let mut status = self.shared.status.lock().clone();
        status.signage_oracle = self.shared.oracle.counts();
        status
    }

    /// The signage points the full node is known to have, against which peers' shares are
    /// checked (give it to the PoSpace share service: `set_context`).
    pub fn oracle(&self) -> Arc<SignageOracle> {
        self.shared.oracle.clone()
    }

    /// Stops its tasks.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for FullNodeLink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The peer connection, forever: before each attempt the RPC's network (when it answers) must
/// be ours; failures wait a back-off; one warning per outage.
async fn run_peer(
    shared: Arc<Shared>,
    tls: Arc<rustls::ClientConfig>,
    rpc: RpcClient,
    mut uplink: Option<tokio::sync::mpsc::Receiver<Uplink>>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut outage: Option<(Instant, String)> = None;
    loop {
        let result = match check_network(&shared, &rpc).await {
            Err(e) => Err(e),
            Ok(()) => {
                let up = || {
                    let mut status = shared.status.lock();
                    status.link = "connected";
                    status.connections += 1;
                    status.connected_since = Some(crate::chia::farmer::now_secs());
                };
                let mut was_up = false;
                let r = peer::session(&shared, &tls, &mut uplink, || {
                    up();
                    was_up = true;
                })
                .await;
                if was_up {
                    backoff = MIN_BACKOFF;
                    if let Some((since, _)) = outage.take() {
                        tracing::info!(
                            full_node = %shared.config.peer,
                            "chia full node link back after {} s",
                            since.elapsed().as_secs()
                        );
                    }
                }
                r
            }
        };
        let error = match result {
            Ok(()) => LinkError::Closed,
            Err(LinkError::Stopped) => return,
            Err(e) => e,
        };
        let text = error.to_string();
        {
            let mut status = shared.status.lock();
            status.link = error.state();
            status.last_error = Some(text.clone());
            status.connected_since = None;
        }
        match &outage {
            // Same outage, same reason: quiet.
            Some((_, reason)) if *reason == text => {
                tracing::debug!(full_node = %shared.config.peer, error = %text, "still no link")
            }
            _ => {
                match &error {
                    LinkError::NetworkMismatch { ours, theirs } => tracing::error!(
                        full_node = %shared.config.peer,
                        "chia full node refused: it is on network {theirs:?}, this node on {ours:?}"
                    ),
                    _ => tracing::warn!(
                        full_node = %shared.config.peer,
                        error = %text,
                        "chia full node link down; retrying with back-off up to {} s",
                        MAX_BACKOFF.as_secs()
                    ),
                }
                let since = outage.as_ref().map_or_else(Instant::now, |(s, _)| *s);
                outage = Some((since, text));
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Asks the RPC which network the full node is on; another one than ours is an error (the
/// peer port would only drop the connection without saying why). An RPC that does not answer
/// lets the peer handshake decide.
async fn check_network(shared: &Shared, rpc: &RpcClient) -> Result<(), LinkError> {
    let Ok(info) = rpc.network_info().await else {
        return Ok(());
    };
    shared.status.lock().network = Some(info.network_name.clone());
    if info.network_name != shared.config.network_id {
        return Err(LinkError::NetworkMismatch {
            ours: shared.config.network_id.clone(),
            theirs: info.network_name,
        });
    }
    Ok(())
}

/// How many full nodes the full node is connected to (`get_connections`, type 1).
async fn full_node_peers(rpc: &RpcClient) -> Option<usize> {
    let answer = rpc.call_json("get_connections").await.ok()?;
    let connections = answer.get("connections")?.as_array()?;
    Some(
        connections
            .iter()
            .filter(|c| c.get("type").and_then(serde_json::Value::as_u64) == Some(1))
            .count(),
    )
}

/// Polls `get_blockchain_state` (and `get_connections`): the status's figures, and the gate on
/// proofs (closed while the full node is syncing or behind its peers, or its state is unknown).
async fn run_rpc(shared: Arc<Shared>, rpc: RpcClient) {
    let mut tick = tokio::time::interval(shared.config.poll_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gate: Option<Option<String>> = None;
    // What was last logged of the chain (peak known?, synced?): logged again when it changes.
    let mut reported: Option<(bool, bool)> = None;
    loop {
        tick.tick().await;
        let reason = match rpc.blockchain_state().await {
            Ok(state) => {
                let peers = full_node_peers(&rpc).await;
                let now = (state.peak_height.is_some(), state.synced);
                if reported != Some(now) {
                    reported = Some(now);
                    tracing::info!(
                        rpc = %shared.config.rpc,
                        "chia full node: {}, difficulty {}, sub-slot iterations {}, {}",
                        state
                            .peak_height
                            .map_or_else(|| "no peak".to_owned(), |h| format!("peak {h}")),
                        state.difficulty,
                        state.sub_slot_iters,
                        if state.synced { "synced" } else { "not synced" }
                    );
                }
                {
                    let mut status = shared.status.lock();
                    status.full_node_peers = peers;
                    status.peak_height = state.peak_height;
                    status.difficulty = Some(state.difficulty);
                    status.sub_slot_iters = Some(state.sub_slot_iters);
                    status.synced = Some(state.synced);
                    status.sync_mode = Some(state.sync_mode);
                    status.rpc_error = None;
                    status.rpc_updated_at = Some(crate::chia::farmer::now_secs());
                }
                not_synced_reason(&shared.config.rpc, &state, peers)
            }
            Err(e) => {
                let text = e.to_string();
                let changed = shared.status.lock().rpc_error.as_deref() != Some(text.as_str());
                if changed {
                    tracing::warn!(rpc = %shared.config.rpc, error = %text, "chia full node RPC failed");
                }
                reported = None;
                shared.status.lock().rpc_error = Some(text.clone());
                Some(format!("the chia full node's state is unknown ({text})"))
            }
        };
        // Only opening and closing are events (the reason's figures change every poll).
        if gate.as_ref().map(Option::is_some) != Some(reason.is_some()) {
            gate = Some(reason.clone());
            if shared.events.send(SourceEvent::Gate(reason)).await.is_err() {
                return;
            }
        }
    }
}

/// Why proofs are refused for this blockchain state (`None`: they are taken), given how many
/// full nodes the full node is connected to. Syncing (`sync_mode`) is chia's initial block
/// download: refused. Not `synced` while it has full-node peers: behind them, refused. Not
/// `synced` without any full-node peer is a node alone on its network (a private network, where
/// chia's own RPC never says synced): its signage points are the network's, so proofs are taken.
pub fn not_synced_reason(
    rpc: &str,
    state: &BlockchainState,
    full_node_peers: Option<usize>,
) -> Option<String> {
    let peak = state
        .peak_height
        .map_or_else(|| "no peak".to_owned(), |h| format!("peak {h}"));
    if state.sync_mode {
        return Some(format!(
            "the chia full node at {rpc} is syncing ({peak}, {} of {})",
            state.sync_progress_height, state.sync_tip_height
        ));
    }
    match (state.synced, full_node_peers) {
        (true, _) | (false, Some(0)) => None,
        (false, Some(n)) => Some(format!(
            "the chia full node at {rpc} is not synced ({peak}, {n} full node peers)"
        )),
        (false, None) => Some(format!(
            "the chia full node at {rpc} is not synced ({peak}; its peers are unknown)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_are_refused_while_syncing_or_behind_peers() {
        let state = |synced, sync_mode| BlockchainState {
            peak_height: Some(10),
            difficulty: 7,
            sub_slot_iters: 1 << 27,
            synced,
            sync_mode,
            sync_progress_height: 10,
            sync_tip_height: 100,
        };
        // (synced, sync_mode, full-node peers) → refused?
        let table = [
            (true, false, Some(8), false),
            (true, false, None, false),
            (false, true, Some(8), true),
            (false, true, Some(0), true),
            (false, false, Some(3), true),
            (false, false, None, true),
            // Alone on its network: its signage points are the network's.
            (false, false, Some(0), false),
        ];
        for (synced, sync_mode, peers, refused) in table {
            let reason = not_synced_reason("rpc", &state(synced, sync_mode), peers);
            assert_eq!(
                reason.is_some(),
                refused,
                "{synced} {sync_mode} {peers:?}: {reason:?}"
            );
        }
        let syncing = not_synced_reason("h:1", &state(false, true), Some(1)).unwrap();
        assert!(
            syncing.contains("syncing (peak 10, 10 of 100)"),
            "{syncing}"
        );
    }
}
