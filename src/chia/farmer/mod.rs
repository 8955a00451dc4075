//! The Chia farmer endpoint: chia harvesters (unmodified chia-blockchain 2.7.x, or
//! `p2pool harvester`) connect to the node's worker port as to their farmer, and their proofs
//! become PoSpace shares.
//!
//! - [`tls`]: the private CA (a chia root's, or one the node creates) and the mTLS server.
//! - [`keys`]: farmer and pool keys (mnemonic file or a generated key).
//! - [`clock`]: the embedded regtest signage clock.
//! - `session`: one harvester connection (websocket `/ws`, chia handshake, plot sync, signage
//!   points out, proofs in, signature requests).
//! - `intake`: the checks a proof passes before it is signed, and the share it becomes.
//! - [`sink`]: where shares go ([`PoSpaceShareSink`]; [`TrackerSink`], a tracker alone, for
//!   tests); [`service_sink`]: the node's share service as the sink ([`ServiceSink`]).
//!
//! [`Farmer`] holds what every connection shares: the TLS acceptor, the keys, the signage points
//! announced, the proofs already answered, per-harvester state and the counters.

pub mod clock;
mod intake;
pub mod keys;
pub mod service_sink;
mod session;
pub mod sink;
pub mod tls;

use std::collections::{BTreeMap, HashSet, VecDeque};
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
}

/// A plot as a harvester's plot sync reported it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlotSummary {
    pub filename: String,
    pub size: u8,
    pub plot_id: String,
    pub plot_public_key: String,
    pub pool_contract_puzzle_hash: Option<String>,
}

/// One connected harvester, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HarvesterInfo {
    /// Connection number.
    pub id: u64,
    pub peer: String,
    /// SHA-256 of its certificate (chia's node id).
    pub node_id: String,
    pub software_version: String,
    pub connected_at: u64,
    /// Plots after the last completed plot sync.
    pub plots: Vec<PlotSummary>,
    pub invalid: Vec<String>,
    pub keys_missing: Vec<String>,
    pub duplicates: Vec<String>,
    pub plot_syncs: u64,
    /// `new_proof_of_space` messages received.
    pub proofs: u64,
    /// Proofs that became shares taken by the share service.
    pub shares: u64,
    pub late_proofs: u64,
    /// Proofs refused for any other reason.
    pub refused_proofs: u64,
    /// Lookup times of the latest signage points (µs, from `farming_info`).
    pub lookup_times_us: VecDeque<u64>,
}

/// An accepted share, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ShareRecord {
    pub hash: String,
    pub harvester: u64,
    pub plot_id: String,
    pub k: u8,
    pub challenge_hash: String,
    pub sp_hash: String,
    pub signage_point_index: u8,
    pub difficulty: u64,
    /// From reading the harvester's `new_proof_of_space` to the share stored and acknowledged
    /// by the share service (the signature round trip included), in milliseconds (µs precision).
    pub proof_to_share_ms: f64,
    /// Of `proof_to_share_ms`, the wait for the harvester's `respond_signatures` after
    /// `request_signatures` was written (the rest is the node's own path).
    pub signature_wait_ms: f64,
    /// The whole share in hex (re-verifiable).
    pub share: String,
}

#[derive(Default)]
struct Recent {
    order: VecDeque<(u64, SignagePoint)>,
    /// (plot id, sp hash) already answered.
    answered: HashSet<([u8; 32], [u8; 32])>,
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
    counters: Mutex<BTreeMap<&'static str, u64>>,
    next_id: AtomicU64,
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
            counters: Mutex::default(),
            next_id: AtomicU64::new(1),
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

    /// Runs the signage clock: each new signage point is recorded, given to the share service
    /// and announced to every harvester. Never returns.
    pub async fn run_clock(self: Arc<Self>) {
        let mut last = None;
        loop {
            let n = self.clock.current();
            if last != Some(n) {
                last = Some(n);
                self.announce(n);
            }
            let next = self.clock.start_of(n + 1);
            let wait = next
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::from_millis(1));
            tokio::time::sleep(wait).await;
        }
    }

    /// Records and announces signage point `n` of the clock.
    pub fn announce(&self, n: u64) {
        let point = self.clock.point(n);
        {
            let mut recent = self.recent.lock();
            recent.order.push_back((n, point));
            while recent.order.len() > RECENT_SIGNAGE_POINTS {
                if let Some((_, old)) = recent.order.pop_front() {
                    recent.answered.retain(|(_, sp)| *sp != old.sp_hash);
                }
            }
        }
        self.sink.signage_point(point);
        let difficulty = self.sink.work().difficulty;
        self.announced.send_replace(Some(Announced {
            number: n,
            point,
            difficulty,
        }));
        tracing::debug!(n, index = point.index, difficulty, "signage point");
    }

    /// Signage points announced, oldest first.
    pub fn signage_points(&self) -> Vec<(u64, SignagePoint)> {
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
        self.shares.lock().iter().cloned().collect()
    }

    /// Counters by reason (refused connections, refused proofs, shares).
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        self.counters.lock().clone()
    }

    /// One counter.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.lock().get(name).copied().unwrap_or(0)
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

/// The JSON the API serves at `/chia/harvesters`, `/chia/shares` and `/chia/signage_points`.
pub fn router(farmer: Arc<Farmer>) -> axum::Router {
    use axum::routing::get;
    use axum::Json;
    let (a, b, c, d) = (farmer.clone(), farmer.clone(), farmer.clone(), farmer);
    axum::Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics_text(&d),
                )
            }),
        )
        .route(
            "/chia/harvesters",
            get(move || async move {
                Json(serde_json::json!({
                    "harvesters": a.harvesters(),
                    "counters": a.counters(),
                }))
            }),
        )
        .route(
            "/chia/shares",
            get(move || async move { Json(serde_json::json!({ "shares": b.shares() })) }),
        )
        .route(
            "/chia/signage_points",
            get(move || async move {
                let points: Vec<_> = c
                    .signage_points()
                    .into_iter()
                    .map(|(n, sp)| {
                        serde_json::json!({
                            "number": n,
                            "challenge_hash": hex::encode(sp.challenge_hash),
                            "sp_hash": hex::encode(sp.sp_hash),
                            "index": sp.index,
                            "peak_height": sp.peak_height,
                        })
                    })
                    .collect();
                Json(serde_json::json!({
                    "network_id": c.config.network_id,
                    "signage_points": points,
                }))
            }),
        )
}

/// The farmer endpoint's figures in Prometheus text format: events by kind (proofs, shares,
/// refusals by reason), harvesters and their plots, the latest signage point's number.
fn metrics_text(farmer: &Farmer) -> String {
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
