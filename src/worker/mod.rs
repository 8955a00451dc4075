//! The worker port: stratum V1 and getwork on one TCP port, like P2Pool.
//!
//! A connection whose first byte is `{` is a stratum session; anything else is HTTP, served by
//! getwork (`POST /` and the long-polling path) merged with whatever [`axum::Router`] the node
//! passes in (status page, JSON API). The port does not build work: it asks a [`WorkProvider`]
//! for a [`Job`] per miner, checks every submit itself (pseudo-share target, duplicates,
//! staleness, ntime range, version bits), keeps hashrate statistics, and hands submits that meet
//! the share or block target back to the provider as a [`Found`].
//!
//! See `docs/WORKER.md` for the wire behaviour (methods, error codes, username syntax, vardiff).

#[doc(hidden)]
pub mod fuzz;
mod getwork;
mod job;
mod sniff;
mod stats;
mod stratum;
mod username;
mod vardiff;

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::{BlockHash, CompactTarget, Network, ScriptBuf, Target, TxMerkleNode};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

pub use job::{difficulty_to_target, target_to_difficulty};
pub use stats::{MinerStats, RejectCounts, WorkerStats};
pub use username::{parse_username, UsernameError};
pub use vardiff::VardiffConfig;

/// One unit of work: everything a miner needs, plus an opaque context the node uses to turn a
/// found header into a share or a block.
pub struct Job {
    /// Unique for every distinct job (the port caches per-job data under this id).
    pub id: String,
    /// Previous block hash.
    pub prev_hash: BlockHash,
    /// Block version before any version rolling.
    pub version: u32,
    /// Block `bits`, exactly as the template gives them.
    pub bits: CompactTarget,
    /// Header time to hand out.
    pub ntime: u32,
    /// Smallest acceptable header time (median time past + 1).
    pub min_ntime: u32,
    /// Height of the block being mined.
    pub height: u32,
    /// Non-witness coinbase serialization before extranonce1‖extranonce2 (8 bytes in all).
    pub coinb1: Vec<u8>,
    /// Non-witness coinbase serialization after the extranonce.
    pub coinb2: Vec<u8>,
    /// Coinbase merkle branch, internal byte order, built from txids.
    pub merkle_branch: Vec<TxMerkleNode>,
    /// Target a header must meet to be a share.
    pub share_target: Target,
    /// Target a header must meet to be a block.
    pub block_target: Target,
    /// The node's own data about this job, handed back in [`Found`].
    pub context: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("prev_hash", &self.prev_hash)
            .field("height", &self.height)
            .field("ntime", &self.ntime)
            .finish_non_exhaustive()
    }
}

/// A miner as it logged in: `ADDRESS[.worker|_worker][+pseudo_difficulty][/share_difficulty]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Miner {
    /// The username exactly as the miner sent it.
    pub username: String,
    /// The payout address, as written by the miner.
    pub address: String,
    /// The payout script of that address.
    pub payout: ScriptBuf,
    /// Worker name (may be empty).
    pub worker: String,
    /// Fixed pseudo-share difficulty (`+D`): disables vardiff for this miner.
    pub pseudo_difficulty: Option<f64>,
    /// Minimum share difficulty the miner asks for (`/D`), for the work builder.
    pub share_difficulty: Option<f64>,
}

/// The provider has no work to hand out right now.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no work: {reason}")]
pub struct NoWork {
    /// Why (for logs and statistics), e.g. "node is far behind its peers".
    pub reason: String,
}

/// Ticks whenever new work exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkUpdate {
    /// Increases with every update.
    pub seq: u64,
    /// The previous block hash changed: old jobs are stale.
    pub clean: bool,
}

/// How a submit reached the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Via {
    /// `mining.submit`.
    Stratum,
    /// getwork over HTTP.
    Getwork,
}

/// A submit whose hash meets the job's share target or block target.
#[derive(Debug, Clone)]
pub struct Found {
    /// The job the header was built from.
    pub job: Arc<Job>,
    /// Who found it.
    pub miner: Arc<Miner>,
    /// The full header (80 bytes when serialized), version rolling applied.
    pub header: Header,
    /// The non-witness coinbase: `coinb1 ‖ extranonce ‖ coinb2`.
    pub coinbase: Vec<u8>,
    /// extranonce1 ‖ extranonce2.
    pub extranonce: [u8; 8],
    /// `header.block_hash()`.
    pub hash: BlockHash,
    /// The hash meets `job.share_target`.
    pub meets_share: bool,
    /// The hash meets `job.block_target`: submit the block at once.
    pub meets_block: bool,
    /// Stratum or getwork.
    pub via: Via,
}

/// What the node made of a [`Found`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FoundOutcome {
    /// Taken as a share (and/or block).
    Accepted,
    /// Too late for the share chain (the miner is told "stale").
    Stale {
        /// Why.
        reason: String,
    },
    /// Refused for another reason.
    Rejected {
        /// Why.
        reason: String,
    },
    /// The node could not take it (e.g. its share store failed): the miner is told why, and it
    /// is not counted against the miner as stale or invalid.
    Failed {
        /// Why.
        reason: String,
    },
}

/// The node side of the worker port: builds jobs and takes found shares and blocks.
pub trait WorkProvider: Send + Sync + 'static {
    /// The Bitcoin network payout addresses must belong to.
    fn network(&self) -> Network;
    /// Current job for this miner. Jobs pay the miner's address as share finder, so they are
    /// per payout script; the provider caches them so N miners cost one build. One fan-out of
    /// new work asks once per distinct (`payout`, `share_difficulty`) and hands the answer to
    /// every session with that pair. Cheap: called on every update.
    fn job(&self, miner: &Miner) -> Result<Arc<Job>, NoWork>;
    /// Ticks whenever new work exists; `clean` when the previous block hash changed.
    fn updates(&self) -> watch::Receiver<WorkUpdate>;
    /// A submit meeting the share or block target. The node builds the share or block; it
    /// should answer promptly (spawn slow work such as block submission retries).
    fn found(&self, found: Found) -> impl Future<Output = FoundOutcome> + Send;
}

/// Settings of the worker port.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Most concurrent connections (stratum and HTTP together); more are closed at once.
    pub max_connections: usize,
    /// Most concurrent connections from one IP address (0: no limit), so that one host cannot
    /// take every slot.
    pub max_connections_per_ip: usize,
    /// A new connection must send its first byte within this.
    pub first_byte_timeout: Duration,
    /// A started stratum line must be complete within this.
    pub line_timeout: Duration,
    /// A stratum session must be subscribed and authorized within this.
    pub authorize_timeout: Duration,
    /// A write to a miner must complete within this (a miner that stops reading is dropped).
    pub write_timeout: Duration,
    /// Longest stratum line.
    pub max_line: usize,
    /// Re-send a job at least this often (cpuminer drops a pool silent for 120 s).
    pub renotify_interval: Duration,
    /// Version bits miners may roll (BIP 310), intersected with each miner's mask.
    pub version_mask: u32,
    /// Per-connection difficulty adjustment.
    pub vardiff: VardiffConfig,
    /// Pseudo-share difficulty of getwork work (unless the username sets `+D`).
    pub getwork_difficulty: f64,
    /// A long-polling request returns after this even without new work.
    pub long_poll_timeout: Duration,
    /// Path advertised in `X-Long-Polling`.
    pub long_poll_path: String,
    /// HTTP request headers must arrive within this.
    pub http_header_timeout: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            // A farm runs tens of thousands of miners, often all behind one NAT address.
            max_connections: 50_000,
            // Half the slots: one address can never take them all, and a farm of 25 000
            // behind one address fits.
            max_connections_per_ip: 25_000,
            first_byte_timeout: Duration::from_secs(15),
            line_timeout: Duration::from_secs(30),
            authorize_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(20),
            max_line: 64 * 1024,
            renotify_interval: Duration::from_secs(30),
            version_mask: 0x1fff_e000,
            vardiff: VardiffConfig::default(),
            getwork_difficulty: 1.0,
            long_poll_timeout: Duration::from_secs(120),
            long_poll_path: "/long-polling".to_owned(),
            http_header_timeout: Duration::from_secs(15),
        }
    }
}

/// Errors of [`WorkerPort::serve`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The listener failed for good.
    #[error("worker port listener: {0}")]
    Listener(#[source] std::io::Error),
}

/// State shared by every connection of one worker port.
pub(crate) struct Shared<P> {
    pub(crate) provider: Arc<P>,
    pub(crate) config: WorkerConfig,
    pub(crate) stats: stats::Stats,
    pub(crate) jobs: job::JobCache,
    pub(crate) extranonces: job::Extranonces,
    pub(crate) getwork: getwork::GetworkState,
    pub(crate) next_job_id: AtomicU64,
    pub(crate) slots: Arc<Semaphore>,
    /// Open connections per peer IP address.
    pub(crate) per_ip: Arc<sniff::PerIp>,
    pub(crate) started: std::time::Instant,
    /// `mining.notify` lines written, and when the last one was (ns after `started`).
    pub(crate) notify_count: AtomicU64,
    pub(crate) notify_last_ns: AtomicU64,
    /// Stratum sessions that receive new work.
    pub(crate) fanout: stratum::fanout::Registry<P>,
    /// Where connections opening with a TLS record (chia harvesters) go; none: closed.
    pub(crate) chia_farmer: std::sync::OnceLock<Arc<dyn TlsService>>,
}

/// What serves the worker port's connections that open with a TLS record (a Chia harvester's
/// ClientHello): the Chia farmer endpoint.
pub trait TlsService: Send + Sync + 'static {
    /// Serves one connection (its first byte still unread) until it ends.
    fn serve_connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

impl<P> Shared<P> {
    /// A stratum job id never handed out before.
    pub(crate) fn next_job_id(&self) -> u64 {
        self.next_job_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Count `n` notify lines just written.
    pub(crate) fn notified(&self, n: u64) {
        let now = self.started.elapsed().as_nanos() as u64;
        self.notify_last_ns.fetch_max(now, Ordering::Relaxed);
        self.notify_count.fetch_add(n, Ordering::Relaxed);
    }
}

/// How many `mining.notify` lines the port has written, and when it wrote the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyWrites {
    /// Lines written since the port started.
    pub count: u64,
    /// When the latest was written to its socket.
    pub last: Option<std::time::Instant>,
}

/// The worker port. Cheap to clone.
pub struct WorkerPort<P> {
    shared: Arc<Shared<P>>,
}

impl<P> Clone for WorkerPort<P> {
    fn clone(&self) -> Self {
        WorkerPort {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<P: WorkProvider> WorkerPort<P> {
    /// A worker port taking its work from `provider`.
    pub fn new(provider: Arc<P>, config: WorkerConfig) -> Self {
        let extranonces = job::Extranonces::default();
        let getwork = getwork::GetworkState::new(&extranonces);
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        WorkerPort {
            shared: Arc::new(Shared {
                provider,
                stats: stats::Stats::default(),
                jobs: job::JobCache::default(),
                extranonces,
                getwork,
                next_job_id: AtomicU64::new(rand::random::<u32>().into()),
                slots,
                per_ip: Arc::default(),
                config,
                started: std::time::Instant::now(),
                notify_count: AtomicU64::new(0),
                notify_last_ns: AtomicU64::new(0),
                fanout: stratum::fanout::Registry::default(),
                chia_farmer: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Serve chia harvesters (connections whose first byte is a TLS record, 0x16) with
    /// `farmer`. Without one such connections are closed. Set once; later calls are ignored.
    pub fn set_chia_farmer(&self, farmer: Arc<dyn TlsService>) {
        let _ = self.shared.chia_farmer.set(farmer);
    }

    /// Snapshot of the hashrate statistics.
    pub fn stats(&self) -> WorkerStats {
        let open =
            self.shared.config.max_connections.max(1) - self.shared.slots.available_permits();
        self.shared.stats.snapshot(open)
    }

    /// Notify lines written so far (for fan-out measurements and metrics).
    pub fn notify_writes(&self) -> NotifyWrites {
        let count = self.shared.notify_count.load(Ordering::Relaxed);
        let ns = self.shared.notify_last_ns.load(Ordering::Relaxed);
        NotifyWrites {
            count,
            last: (count > 0).then(|| self.shared.started + Duration::from_nanos(ns)),
        }
    }

    /// The getwork routes (`POST /`, the long-polling path), ready to merge into a router.
    pub fn getwork_router(&self) -> axum::Router {
        getwork::router(Arc::clone(&self.shared))
    }

    /// Serve `listener` until `shutdown` completes (then every connection is closed). HTTP connections are served by the getwork
    /// routes merged with `http` (which must not route `POST /` or the long-polling path).
    pub async fn serve(
        &self,
        listener: TcpListener,
        http: axum::Router,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), WorkerError> {
        let router = self.getwork_router().merge(http);
        // Dropping the accept loop aborts every connection it started.
        tokio::select! {
            r = sniff::accept_loop(Arc::clone(&self.shared), listener, router) => r,
            () = stratum::fanout::run(Arc::clone(&self.shared)) => Ok(()),
            () = shutdown => Ok(()),
        }
    }
}
