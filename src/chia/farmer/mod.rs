//! The Chia farmer endpoint: chia harvesters (unmodified chia-blockchain 2.7.x, or
//! `p2pool harvester`) connect to the node's worker port as to their farmer, and their proofs
//! become PoSpace shares.
//!
//! - [`tls`]: the private CA (a chia root's, or one the node creates) and the mTLS server.
//! - [`keys`]: farmer and pool keys (mnemonic file, chia's keyring ([`keyring`]) or a generated
//!   key).
//! - [`clock`]: the embedded regtest signage clock.
//! - [`source`]: where signage points come from (the clock or a chia full node), one bounded
//!   channel of events that [`Farmer::run_source`] consumes.
//! - `session`: one harvester connection (websocket `/ws`, chia handshake, plot sync, signage
//!   points out, proofs in, signature requests).
//! - [`messages`]: the messages sent to harvesters, built from the node's values.
//! - `intake`: the checks a proof passes before it is signed, and the share it becomes.
//! - [`blocks`]: farming Chia blocks: proofs good enough for the chain declared to the full
//!   node, its `request_signed_values` answered, each attempt recorded with its outcome.
//! - [`sink`]: where shares go ([`PoSpaceShareSink`]; [`TrackerSink`], a tracker alone, for
//!   tests); [`service_sink`]: the node's share service as the sink ([`ServiceSink`]).
//!
//! [`Farmer`] holds what every connection shares: the TLS acceptor, the keys, the signage points
//! announced, the proofs already answered, per-harvester state and the counters.

pub mod blocks;
pub mod clock;
pub mod cpu;
mod intake;
pub mod keyring;
pub mod keys;
pub mod messages;
pub mod service_sink;
mod session;
pub mod sink;
pub mod source;
pub mod tls;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;
use sharechain::pospace_share::{ChiaNetwork, SignagePoint};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub use clock::SignageClock;
pub use keys::FarmerKeys;
pub use service_sink::ServiceSink;
pub use sink::{PoSpaceShareSink, ShareWork, SinkError, TrackerSink};
pub use source::{ChainPoint, SourceEvent, SourcePoint};

use crate::chia::ssl::TlsError;

/// Signage points kept for proofs (about two minutes of the regtest clock).
const RECENT_SIGNAGE_POINTS: usize = 64;
/// A proof for a signage point more than this many signage points old is late.
pub const LATE_AFTER_SIGNAGE_POINTS: u64 = 8;
/// Accepted shares kept for the API.
const RECENT_SHARES: usize = 1000;
/// Lookup times kept per harvester.
const LOOKUP_TIMES: usize = 32;

/// What the farmer endpoint needs.
#[derive(Debug, Clone)]
pub struct FarmerConfig {
    /// The share chain's network.
    pub network: &'static ChiaNetwork,
    /// Network id announced to harvesters and required of them (chia's `selected_network`).
    pub network_id: String,
    /// Directory with `private_ca.crt` and `private_ca.key`.
    pub ca_dir: PathBuf,
    /// Farmer and pool keys.
    pub keys: FarmerKeys,
    /// Where this node's farmer is paid (puzzle hash of its `xch…`/`txch…` address).
    pub payout_puzzle_hash: [u8; 32],
    /// Signage clock interval.
    pub clock_interval: Duration,
    /// Port announced in the handshake.
    pub server_port: u16,
}

/// Why the farmer endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FarmerError {
    /// The CA or server certificate.
    #[error("farmer TLS: {0}")]
    Tls(#[from] TlsError),
}

/// A signage point as announced to harvesters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    /// Its number on the clock.
    pub number: u64,
    /// The signage point.
    pub point: SignagePoint,
    /// The share difficulty sent with it.
    pub difficulty: u64,
    /// When it was announced (seconds since the Unix epoch).
    pub time: u64,
    /// The chain's figures when the point came from a full node.
    pub chain: Option<ChainPoint>,
}

/// A plot as a harvester's plot sync reported it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlotSummary {
    /// The plot file's path on the harvester.
    pub filename: String,
    /// k for a v1 plot (a v2 plot's strength with the top bit set), as in chia's `Plot2`.
    pub size: u8,
    /// The plot id, hex.
    pub plot_id: String,
    /// The plot public key (BLS G1), hex.
    pub plot_public_key: String,
    /// The plot NFT's pool contract puzzle hash, hex; `None` for an OG plot.
    pub pool_contract_puzzle_hash: Option<String>,
    /// Bytes on the harvester's disk.
    pub file_size: u64,
}

/// One connected harvester, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HarvesterInfo {
    /// Connection number.
    pub id: u64,
    /// The harvester's socket address (`ip:port`).
    pub peer: String,
    /// SHA-256 of its certificate (chia's node id).
    pub node_id: String,
    /// The `software_version` of its chia handshake.
    pub software_version: String,
    /// When its chia handshake completed (seconds since the Unix epoch).
    pub connected_at: u64,
    /// When its last message arrived (seconds since the Unix epoch).
    pub last_seen: u64,
    /// Plots after the last completed plot sync.
    pub plots: Vec<PlotSummary>,
    /// Plot paths it could not open, from its latest `plot_sync_invalid`.
    pub invalid: Vec<String>,
    /// Plot paths whose farmer or pool key this farmer did not send, from its latest
    /// `plot_sync_keys_missing`.
    pub keys_missing: Vec<String>,
    /// Duplicate plot files, from its latest `plot_sync_duplicates`.
    pub duplicates: Vec<String>,
    /// Plot syncs completed (`plot_sync_done` received) on this connection.
    pub plot_syncs: u64,
    /// `new_proof_of_space` messages received.
    pub proofs: u64,
    /// Proofs that became shares taken by the share service.
    pub shares: u64,
    /// Proofs refused as late: more than [`LATE_AFTER_SIGNAGE_POINTS`] signage points behind the
    /// latest one.
    pub late_proofs: u64,
    /// Further proofs of a plot for a signage point it already had a proof for (not signed).
    pub duplicate_proofs: u64,
    /// Proofs refused for any other reason.
    pub refused_proofs: u64,
    /// Late and refused proofs (and their signatures) by reason, named as [`Farmer::counters`].
    pub refused_by_reason: BTreeMap<&'static str, u64>,
    /// Lookup times of the latest signage points (µs, from `farming_info`).
    pub lookup_times_us: VecDeque<u64>,
}

/// An accepted share, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ShareRecord {
    /// The share's hash, hex.
    pub hash: String,
    /// Connection number of the harvester whose proof it is ([`HarvesterInfo::id`]).
    pub harvester: u64,
    /// The plot id, hex.
    pub plot_id: String,
    /// The plot's size k.
    pub k: u8,
    /// The sub-slot challenge of the answered signage point, hex.
    pub challenge_hash: String,
    /// The answered signage point's hash, hex.
    pub sp_hash: String,
    /// The answered signage point's index in its sub-slot, 0 to 63.
    pub signage_point_index: u8,
    /// The share's difficulty (what the share chain required at that point).
    pub difficulty: u64,
    /// From reading the harvester's `new_proof_of_space` to the share stored and acknowledged
    /// by the share service (the signature round trip included), in milliseconds (µs precision).
    pub proof_to_share_ms: f64,
    /// Of `proof_to_share_ms`, the wait for the harvester's `respond_signatures` after
    /// `request_signatures` was written (the rest is the node's own path).
    pub signature_wait_ms: f64,
    /// When its proof arrived (seconds since the Unix epoch).
    pub received: u64,
    /// The whole share in hex (re-verifiable).
    pub share: String,
}

#[derive(Default)]
struct Recent {
    order: VecDeque<Announced>,
    /// (plot id, sp hash) already answered.
    answered: HashSet<([u8; 32], [u8; 32])>,
}

impl Recent {
    /// The announced signage point of this challenge and hash, if it is still recent.
    fn find(&self, challenge_hash: &[u8; 32], sp_hash: &[u8; 32]) -> Option<&Announced> {
        self.order
            .iter()
            .rev()
            .find(|a| a.point.challenge_hash == *challenge_hash && a.point.sp_hash == *sp_hash)
    }
}

/// The farmer endpoint.
pub struct Farmer {
    config: FarmerConfig,
    acceptor: tokio_rustls::TlsAcceptor,
    sink: Arc<dyn PoSpaceShareSink>,
    clock: SignageClock,
    announced: watch::Sender<Option<Announced>>,
    recent: Mutex<Recent>,
    harvesters: Mutex<BTreeMap<u64, HarvesterInfo>>,
    shares: Mutex<VecDeque<ShareRecord>>,
    /// Shares on their way to the sink: hash → (harvester, when its proof arrived). The
    /// service may list a share before `submit` returns, so its origin is known from the start.
    submitting: Mutex<HashMap<String, (u64, u64)>>,
    counters: Mutex<BTreeMap<&'static str, u64>>,
    next_id: AtomicU64,
    /// Why proofs are refused now (e.g. the full node is syncing); `None` when they are taken.
    gate: Mutex<Option<String>>,
    /// Frames received from harvesters, kept while recording (test vectors).
    recorder: Mutex<Option<Recorder>>,
    /// Block farming (with a full node).
    blocks: blocks::Blocks,
}

/// The first frames of each message type received from harvesters, as received.
struct Recorder {
    per_type: usize,
    frames: BTreeMap<u8, Vec<Vec<u8>>>,
}

impl std::fmt::Debug for Farmer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Farmer")
            .field("network_id", &self.config.network_id)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Farmer {
    /// The endpoint: issues its server certificate from the CA; shares go to `sink`.
    pub fn new(
        config: FarmerConfig,
        sink: Arc<dyn PoSpaceShareSink>,
    ) -> Result<Arc<Farmer>, FarmerError> {
        let server = tls::server_config(&config.ca_dir)?;
        let clock = SignageClock::new(config.network, config.clock_interval);
        tracing::info!(
            network = %config.network_id,
            ca = %config.ca_dir.display(),
            farmer_pk = %hex::encode(config.keys.farmer_pk().to_bytes()),
            pool_pk = %hex::encode(config.keys.pool_pk().to_bytes()),
            "chia farmer endpoint ready"
        );
        Ok(Arc::new(Farmer {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            sink,
            clock,
            announced: watch::channel(None).0,
            recent: Mutex::default(),
            harvesters: Mutex::default(),
            shares: Mutex::default(),
            submitting: Mutex::default(),
            counters: Mutex::default(),
            next_id: AtomicU64::new(1),
            recorder: Mutex::new(None),
            gate: Mutex::new(None),
            blocks: blocks::Blocks::default(),
            config,
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &FarmerConfig {
        &self.config
    }

    /// Serves one connection whose first byte is a TLS record (0x16).
    pub async fn serve_connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        session::run(self, stream, peer).await;
    }

    /// Runs the embedded signage clock as the source. Never returns.
    pub async fn run_clock(self: Arc<Self>) {
        let (events, receiver) = source::channel();
        let clock = tokio::spawn(source::run_clock(self.clock, events));
        self.run_source(receiver).await;
        clock.abort();
    }

    /// Takes signage points (and the gate on proofs) from a source until it closes: each new
    /// signage point is recorded, given to the share service and announced to every harvester.
    pub async fn run_source(self: Arc<Self>, mut events: source::SourceReceiver) {
        while let Some(event) = events.recv().await {
            match event {
                SourceEvent::Point(point) => self.publish(point),
                SourceEvent::Gate(reason) => self.set_gate(reason),
                SourceEvent::Reverted(sp_hash) => self.revert(&sp_hash),
            }
        }
    }

    /// Records and announces signage point `n` of the clock.
    pub fn announce(&self, n: u64) {
        self.publish(SourcePoint {
            number: n,
            point: self.clock.point(n),
            chain: None,
        });
    }

    /// Records and announces a signage point from a source. A point already announced (a full
    /// node may repeat one) is ignored.
    pub fn publish(&self, source: SourcePoint) {
        let (n, point) = (source.number, source.point);
        let announced = Announced {
            number: n,
            point,
            difficulty: self.sink.work().difficulty,
            time: unix_now(),
            chain: source.chain,
        };
        {
            let mut recent = self.recent.lock();
            if recent.find(&point.challenge_hash, &point.sp_hash).is_some() {
                return;
            }
            recent.order.push_back(announced);
            while recent.order.len() > RECENT_SIGNAGE_POINTS {
                if let Some(Announced { point: old, .. }) = recent.order.pop_front() {
                    recent.answered.retain(|(_, sp)| *sp != old.sp_hash);
                }
            }
        }
        self.sink.signage_point(point);
        self.announced.send_replace(Some(announced));
        tracing::debug!(
            n,
            index = point.index,
            difficulty = announced.difficulty,
            "signage point"
        );
    }

    /// Forgets a reverted signage point: proofs on it are refused from now on (as on an unknown
    /// one); shares already made on it stay.
    pub fn revert(&self, sp_hash: &[u8; 32]) {
        let mut recent = self.recent.lock();
        let before = recent.order.len();
        recent.order.retain(|a| a.point.sp_hash != *sp_hash);
        if recent.order.len() != before {
            recent.answered.retain(|(_, sp)| sp != sp_hash);
            tracing::info!(sp = %hex::encode(sp_hash), "signage point reverted: proofs on it are refused");
        }
    }

    /// Refuses proofs from now on, saying why (`Some`), or takes them again (`None`).
    pub fn set_gate(&self, reason: Option<String>) {
        let mut gate = self.gate.lock();
        if *gate != reason {
            match &reason {
                Some(why) => tracing::warn!("proofs refused until further notice: {why}"),
                None => tracing::info!("proofs taken again"),
            }
            *gate = reason;
        }
    }

    /// Why proofs are refused now, if they are.
    pub fn gate(&self) -> Option<String> {
        self.gate.lock().clone()
    }

    /// Signage points announced, oldest first.
    pub fn signage_points(&self) -> Vec<(u64, SignagePoint)> {
        self.recent
            .lock()
            .order
            .iter()
            .map(|a| (a.number, a.point))
            .collect()
    }

    /// Signage points announced, oldest first, with their difficulty and time.
    pub fn announced_points(&self) -> Vec<Announced> {
        self.recent.lock().order.iter().copied().collect()
    }

    /// The latest announced signage point.
    pub fn latest(&self) -> Option<Announced> {
        *self.announced.borrow()
    }

    /// Connected harvesters.
    pub fn harvesters(&self) -> Vec<HarvesterInfo> {
        self.harvesters.lock().values().cloned().collect()
    }

    /// Accepted shares, oldest first.
    pub fn shares(&self) -> Vec<ShareRecord> {
        self.newest_shares(usize::MAX)
    }

    /// The newest `n` accepted shares, oldest first (a poller's cheap look at what is new).
    pub fn newest_shares(&self, n: usize) -> Vec<ShareRecord> {
        let shares = self.shares.lock();
        shares
            .iter()
            .skip(shares.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Where this node's harvesters' shares came from: share hash (as `ShareRecord::hash`) →
    /// (harvester, when its proof arrived), for the recent shares and those being submitted.
    pub fn share_origins(&self) -> HashMap<String, (u64, u64)> {
        let mut origins: HashMap<String, (u64, u64)> = self
            .shares
            .lock()
            .iter()
            .map(|r| (r.hash.clone(), (r.harvester, r.received)))
            .collect();
        origins.extend(
            self.submitting
                .lock()
                .iter()
                .map(|(h, origin)| (h.clone(), *origin)),
        );
        origins
    }

    /// Counters by reason (refused connections, refused proofs, shares).
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        self.counters.lock().clone()
    }

    /// One counter.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.lock().get(name).copied().unwrap_or(0)
    }

    /// Keeps the first `per_type` frames of each message type harvesters send from now on,
    /// byte for byte (for recording test vectors of a real harvester's session).
    pub fn record_frames(&self, per_type: usize) {
        *self.recorder.lock() = Some(Recorder {
            per_type,
            frames: BTreeMap::new(),
        });
    }

    /// The frames recorded since [`Farmer::record_frames`], by message type.
    pub fn recorded_frames(&self) -> BTreeMap<u8, Vec<Vec<u8>>> {
        self.recorder
            .lock()
            .as_ref()
            .map(|r| r.frames.clone())
            .unwrap_or_default()
    }

    fn record_frame(&self, msg_type: u8, bytes: &[u8]) {
        if let Some(r) = self.recorder.lock().as_mut() {
            let kept = r.frames.entry(msg_type).or_default();
            if kept.len() < r.per_type {
                kept.push(bytes.to_vec());
            }
        }
    }

    fn count(&self, name: &'static str) {
        *self.counters.lock().entry(name).or_insert(0) += 1;
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn with_harvester(&self, id: u64, f: impl FnOnce(&mut HarvesterInfo)) {
        if let Some(h) = self.harvesters.lock().get_mut(&id) {
            f(h);
        }
    }

    fn record_share(&self, record: ShareRecord) {
        let mut shares = self.shares.lock();
        shares.push_back(record);
        while shares.len() > RECENT_SHARES {
            shares.pop_front();
        }
    }
}

/// The farmer endpoint's figures in Prometheus text format: events by kind (proofs, shares,
/// refusals by reason), harvesters and their plots, the latest signage point's number.
pub(crate) fn metrics_text(farmer: &Farmer) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    out.push_str(
        "# HELP p2pool_chia_events_total Farmer endpoint events: proofs, shares, and refusals by reason.\n\
         # TYPE p2pool_chia_events_total counter\n",
    );
    for (event, n) in farmer.counters() {
        let _ = writeln!(out, "p2pool_chia_events_total{{event=\"{event}\"}} {n}");
    }
    let harvesters = farmer.harvesters();
    let plots: usize = harvesters.iter().map(|h| h.plots.len()).sum();
    let _ = writeln!(
        out,
        "# HELP p2pool_chia_harvesters Chia harvesters connected.\n\
         # TYPE p2pool_chia_harvesters gauge\n\
         p2pool_chia_harvesters {}\n\
         # HELP p2pool_chia_plots Plots the connected harvesters reported by plot sync.\n\
         # TYPE p2pool_chia_plots gauge\n\
         p2pool_chia_plots {plots}",
        harvesters.len()
    );
    if let Some((number, _)) = farmer.signage_points().last() {
        let _ = writeln!(
            out,
            "# HELP p2pool_chia_signage_point The number of the latest signage point sent.\n\
             # TYPE p2pool_chia_signage_point gauge\n\
             p2pool_chia_signage_point {number}"
        );
    }
    out
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    unix_now()
}

/// Lookup times kept per harvester.
pub(crate) const fn lookup_times() -> usize {
    LOOKUP_TIMES
}

impl crate::worker::TlsService for Farmer {
    fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(Farmer::serve_connection(self, stream, peer))
    }
}
