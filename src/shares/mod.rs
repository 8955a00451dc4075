//! The share service: owns a share kind's tracker, its table of the [`ShareStore`] and the share
//! network's [`P2pHandle`], and runs the insert pipeline
//!
//! ```text
//! bytes (gossip / sync) ─► decode + stand-alone checks ─► context (gossip: held until known)
//!      ─► tracker insert (verify) ─► store (durable)
//!      ─► forward gossip / publish ─► request missing parents ─► penalise senders of invalid shares
//! ```
//!
//! on one worker thread, off the swarm's event loop and off the async runtime. It answers peers'
//! sync requests, drives the initial sync (ask each new peer for its status, fetch its best share
//! and up to 999 ancestors a round trip until the chain is complete), and tells the node whether it
//! is too far behind its peers to hand out work.
//!
//! The worker is the tracker's one owner: it alone changes it, and after every change that
//! matters (insert, new best share, new tip, new verifier facts, the load at start) it publishes a
//! [`ChainView`] — best share, heights, head lists and the kind's derived data (for Bitcoin the
//! prepared work base of the best share, for PoSpace its difficulty and PPLNS weights) —
//! which readers take with [`Service::view`] without waiting on the worker. Lookups of one
//! share go to the worker as a read-only job ([`Service::query`]), answered between inserts.
//!
//! The service is generic over the share kind ([`ShareKind`]): [`ShareService`] is the Bitcoin
//! kind's, [`PoSpaceService`] the Chia proof-of-space kind's. The module is split by job:
//!
//! - [`kind`]: the [`ShareKind`] trait; [`bitcoin`] and [`pospace`] implement it.
//! - [`context`]: outside facts peers' shares are checked against before verification
//!   ([`ShareContext`], e.g. a chia full node's signage points); shares waiting for them are held.
//! - `ingest`: the worker: shares in, verdicts on gossip, bans, the store written.
//! - [`net`]: the network as the worker sees it ([`ShareNet`]: publish, verdicts, penalties).
//! - `sync`: the sync protocol (answering peers, the initial sync, re-requesting parents).
//! - `load`: loading and re-verifying the stored chain at start.
//! - `height`: the peer-height policy ([`SyncStatus`]).
//! - `seen`: the first-seen log ([`FirstSeen`]).

pub mod bitcoin;
pub mod context;
mod height;
mod ingest;
pub mod kind;
mod load;
pub mod net;
pub mod pospace;
mod seen;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use libp2p::PeerId;
use parking_lot::Mutex;
use sharechain::tracker::InsertError;
use sharechain::{ShareHash, VerifyError};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

pub use self::bitcoin::{Bitcoin, BitcoinView};
use self::context::HeldShares;
pub use self::context::{ContextCounts, ContextVerdict, ShareContext};
use self::height::PeerChain;
pub use self::height::{SyncStatus, BEHIND_THRESHOLD};
pub use self::kind::{KindTracker, Refusal, ShareKind};
pub use self::net::ShareNet;
pub use self::pospace::{HeldShare, PoSpace, PoSpaceView};
pub use self::seen::FirstSeen;
use self::seen::SeenLog;
use crate::p2p::{ChainStatus, Inbound, P2pHandle, Via};
use crate::store::{ShareStore, StoreError};

const JOB_QUEUE: usize = 256;

/// Why a local share was not taken.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SubmitError<E = VerifyError> {
    /// The tracker refused the share: it was found invalid before, or it builds on an invalid
    /// share.
    #[error("{0}")]
    Insert(#[from] InsertError),
    /// The tracker took the share but the kind's verification on the chain found it invalid (`E` is
    /// the kind's verify error); it is removed again.
    #[error("share is invalid on the chain: {0}")]
    Invalid(E),
    /// The store write failed (shared by every share of the commit).
    #[error("{0}")]
    Store(Arc<StoreError>),
    /// The service's worker has stopped (the node is shutting down), so nothing was done.
    #[error("share service stopped")]
    Stopped,
}

impl<E> From<StoreError> for SubmitError<E> {
    fn from(e: StoreError) -> Self {
        SubmitError::Store(Arc::new(e))
    }
}

/// Why the service could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// The share store in the data directory could not be created, opened or read.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The share network could not start (node key, transport, or a listen address).
    #[error("share network: {0}")]
    P2p(#[from] crate::p2p::P2pError),
}

/// A read-only summary for the HTTP API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShareSnapshot {
    /// Hash of the best share, hex; `None` while the chain is empty.
    pub best: Option<String>,
    /// The best share's height as the kind counts it (0 with no best share).
    pub height: u32,
    /// Shares held in the tracker.
    pub shares: usize,
    /// Verified shares without verified children.
    pub verified_heads: usize,
    /// Parents not held below shares that still want history (being requested from peers).
    pub missing_parents: usize,
    /// Share-network peers whose chain status this node tracks (connected and not penalised).
    pub peers: usize,
    /// Shares received from peers since start, by gossip or sync, before any check.
    pub received: u64,
    /// Peer messages since start that held an undecodable or invalid share (each penalised the
    /// peer).
    pub invalid: u64,
    /// Whether the node is caught up enough with its peers to hand out work.
    pub sync: SyncStatus,
}

/// The chain as the share worker last published it: immutable, replaced whole after every
/// change that matters. Read with [`Service::view`].
#[derive(Debug)]
pub struct ChainView<K: ShareKind> {
    /// The best share.
    pub best: Option<ShareHash>,
    /// The best share's height as peers compare it (0 without one).
    pub height: u32,
    /// Shares held.
    pub shares: usize,
    /// Shares without children.
    pub heads: Vec<ShareHash>,
    /// Verified shares without verified children.
    pub verified_heads: Vec<ShareHash>,
    /// Parents not held, below shares that want history.
    pub missing_parents: usize,
    /// The kind's derived data ([`ShareKind::View`]).
    pub kind: K::View,
}

impl<K: ShareKind> ChainView<K> {
    /// The view of `t`, reusing what did not change since `previous` (what the worker
    /// publishes after each change).
    pub fn of(
        params: &'static K::Params,
        t: &KindTracker<K>,
        previous: Option<&ChainView<K>>,
    ) -> Self {
        let best = t.best();
        ChainView {
            best,
            height: best.map(|b| K::height(t.chain(), &b)).unwrap_or(0),
            shares: t.chain().len(),
            heads: t.heads(),
            verified_heads: t.verified_heads(),
            missing_parents: t.missing_parents().len(),
            kind: K::view(params, t, previous.map(|p| &p.kind)),
        }
    }
}

/// A read-only look at the tracker, run on the worker between jobs.
type Query<K> = Box<dyn FnOnce(&KindTracker<K>) + Send>;

/// A change to the verifier's outside facts (e.g. new Chia signage points), run on the worker.
type RulesUpdate<K> = Box<dyn FnOnce(&mut <K as ShareKind>::Verifier) + Send>;

enum Job<K: ShareKind> {
    Shares {
        from: PeerId,
        shares: Vec<Vec<u8>>,
        via: Via,
    },
    Local {
        share: K::Share,
        reply: oneshot::Sender<Result<ShareHash, SubmitError<K::VerifyError>>>,
    },
    /// A new tip is in `pending_tip`.
    SetTip,
    /// New facts for the verifier; pending shares are verified again after it.
    Rules(RulesUpdate<K>),
    /// Held shares are checked against their context again.
    Recheck,
    /// A read-only look at the tracker.
    Query(Query<K>),
    Stop(oneshot::Sender<()>),
}

struct Inner<K: ShareKind> {
    params: &'static K::Params,
    /// Changed only by the worker; the service's own sync protocol reads it to answer peers.
    /// Everyone else reads `view`.
    tracker: Mutex<KindTracker<K>>,
    /// What the worker published of the tracker after its last change.
    view: ArcSwap<ChainView<K>>,
    /// Whether the node is behind its peers, refreshed on every chain change and peer claim.
    sync: ArcSwap<SyncStatus>,
    /// Sync requests and answers (async).
    p2p: P2pHandle,
    /// What the worker tells the network (never blocks it).
    net: Box<dyn ShareNet>,
    best_tx: watch::Sender<Option<ShareHash>>,
    peers: Mutex<HashMap<PeerId, PeerChain>>,
    inflight: Mutex<HashSet<ShareHash>>,
    jobs: mpsc::Sender<Job<K>>,
    rt: tokio::runtime::Handle,
    received: AtomicU64,
    invalid: AtomicU64,
    seen: Mutex<SeenLog>,
    /// The latest tip not yet applied: set without waiting on the job queue, applied by the
    /// worker after whatever job it is on.
    pending_tip: Mutex<Option<Option<K::Tip>>>,
    /// What peers' gossiped shares are checked against before verification (none: nothing).
    context: Mutex<Option<Arc<dyn ShareContext<K>>>>,
    /// Peers' shares waiting for their context.
    held: Mutex<HeldShares<K::Share>>,
}

/// The share service of kind `K`. Cheap to clone.
pub struct Service<K: ShareKind> {
    inner: Arc<Inner<K>>,
}

/// The Bitcoin share service.
pub type ShareService = Service<Bitcoin>;
/// The Chia proof-of-space share service.
pub type PoSpaceService = Service<PoSpace>;

impl<K: ShareKind> Clone for Service<K> {
    fn clone(&self) -> Self {
        Service {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: ShareKind> std::fmt::Debug for Service<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareService")
            .field("kind", &K::NAME)
            .field("network", &K::network_name(self.inner.params))
            .finish_non_exhaustive()
    }
}

impl Service<Bitcoin> {
    /// Everything in one call, for the node: opens `datadir/shares.redb`, starts the share
    /// network with `config` (its `datadir` defaults to `datadir`: node key, address book) and
    /// the service on top.
    pub async fn open(
        datadir: &std::path::Path,
        config: crate::p2p::P2pConfig,
    ) -> Result<ShareService, StartError> {
        std::fs::create_dir_all(datadir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        let params = config.params;
        let store = ShareStore::open(&datadir.join("shares.redb"))?;
        Self::open_with(datadir, store, config, params).await
    }
}

impl<K: ShareKind> Service<K> {
    /// Starts the share network with `config` under the kind's names (its `datadir` defaults to
    /// `datadir`) and the service on top, storing in the kind's table of `store`.
    pub async fn open_with(
        datadir: &std::path::Path,
        store: ShareStore,
        mut config: crate::p2p::P2pConfig,
        params: &'static K::Params,
    ) -> Result<Self, StartError> {
        config.datadir.get_or_insert_with(|| datadir.to_owned());
        config.names = Some(K::names(params));
        let (p2p, inbound) = crate::p2p::spawn(config).await?;
        Self::start(params, store, p2p, inbound).await
    }

    /// Loads the chain from the kind's table of `store` (re-checking and re-verifying every
    /// share), then starts the worker and the network dispatcher on the current runtime. `p2p`
    /// should run under the kind's names ([`ShareKind::names`]).
    pub async fn start(
        params: &'static K::Params,
        store: ShareStore,
        p2p: P2pHandle,
        inbound: mpsc::Receiver<Inbound>,
    ) -> Result<Self, StartError> {
        let net = net::Live {
            p2p: p2p.clone(),
            rt: tokio::runtime::Handle::current(),
        };
        Self::start_with_net(params, store, p2p, inbound, Box::new(net)).await
    }

    /// [`Self::start`], with the worker's verdicts and publications going to `net`.
    pub(crate) async fn start_with_net(
        params: &'static K::Params,
        store: ShareStore,
        p2p: P2pHandle,
        inbound: mpsc::Receiver<Inbound>,
        net: Box<dyn ShareNet>,
    ) -> Result<Self, StartError> {
        let (store, tracker) = tokio::task::spawn_blocking(move || {
            let store = store.table(K::TABLE)?;
            let tracker = load::load::<K>(params, &store)?;
            Ok::<_, StoreError>((store, tracker))
        })
        .await
        .expect("loading does not panic")?;
        let (best_tx, _) = watch::channel(tracker.best());
        let view = ChainView::of(params, &tracker, None);
        let sync = SyncStatus::new(view.height, 0);
        let (jobs, jobs_rx) = mpsc::channel(JOB_QUEUE);
        let inner = Arc::new(Inner {
            params,
            tracker: Mutex::new(tracker),
            view: ArcSwap::from_pointee(view),
            sync: ArcSwap::from_pointee(sync),
            p2p,
            net,
            best_tx,
            peers: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashSet::new()),
            jobs,
            rt: tokio::runtime::Handle::current(),
            received: AtomicU64::new(0),
            seen: Mutex::new(SeenLog::default()),
            pending_tip: Mutex::new(None),
            invalid: AtomicU64::new(0),
            context: Mutex::new(None),
            held: Mutex::new(HeldShares::default()),
        });
        let worker = Arc::clone(&inner);
        std::thread::Builder::new()
            .name(format!("share-worker-{}", K::NAME))
            .spawn(move || worker.run(jobs_rx, store))
            .expect("spawning a thread");
        tokio::spawn(sync::dispatch(Arc::clone(&inner), inbound));
        tokio::spawn(sync::sync_ticker(Arc::downgrade(&inner)));
        tokio::spawn(context_ticker(Arc::downgrade(&inner)));
        Ok(Service { inner })
    }

    /// The network's parameters.
    pub fn params(&self) -> &'static K::Params {
        self.inner.params
    }

    /// The share network handle (to publish found blocks and tips, list peers).
    pub fn p2p(&self) -> &P2pHandle {
        &self.inner.p2p
    }

    /// The best share to build on.
    pub fn best_share_hash(&self) -> Option<ShareHash> {
        self.view().best
    }

    /// The chain as the share worker last published it (never waits on the worker).
    pub fn view(&self) -> Arc<ChainView<K>> {
        self.inner.view.load_full()
    }

    /// The body of P2Pool's `GET /web/best_share_hash`: the best share hash as a JSON string
    /// (`null` without a share).
    pub fn best_share_hash_json(&self) -> String {
        match self.best_share_hash() {
            Some(h) => format!("\"{h}\""),
            None => "null".to_owned(),
        }
    }

    /// Changes of the best share (to rebuild work at once).
    pub fn subscribe_best(&self) -> watch::Receiver<Option<ShareHash>> {
        self.inner.best_tx.subscribe()
    }

    /// Runs `f` with read access to the tracker on the share worker, between its jobs, and
    /// returns what it gives: for lookups the published [`ChainView`] does not keep (one share's
    /// details). Waits behind the jobs queued before it.
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&KindTracker<K>) -> R + Send + 'static,
    ) -> Result<R, SubmitError<K::VerifyError>> {
        let (reply, rx) = oneshot::channel();
        let job = Job::Query(Box::new(move |t: &KindTracker<K>| {
            let _ = reply.send(f(t));
        }));
        self.inner
            .jobs
            .send(job)
            .await
            .map_err(|_| SubmitError::Stopped)?;
        rx.await.map_err(|_| SubmitError::Stopped)
    }

    /// When `hash` arrived and from whom; `None` for shares loaded from the store (or unknown).
    pub fn first_seen(&self, hash: &ShareHash) -> Option<FirstSeen> {
        self.inner.seen.lock().get(hash)
    }

    /// A share found by this node's miners: inserted, stored durably, then gossiped. Returns its
    /// hash once it is stored.
    pub async fn submit_local_share(
        &self,
        share: K::Share,
    ) -> Result<ShareHash, SubmitError<K::VerifyError>> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .jobs
            .send(Job::Local { share, reply })
            .await
            .map_err(|_| SubmitError::Stopped)?;
        rx.await.map_err(|_| SubmitError::Stopped)?
    }

    /// The tip shares should build on (may change the best share).
    pub async fn set_tip(&self, tip: Option<K::Tip>) {
        // Never waits behind a busy share worker: only the latest tip matters, and the worker
        // takes it after its current job even when this wake-up finds the queue full.
        *self.inner.pending_tip.lock() = Some(tip);
        let _ = self.inner.jobs.try_send(Job::SetTip);
    }

    /// Gives the verifier new outside facts (e.g. Chia signage points) on the worker, then
    /// verifies the shares that were waiting for them. Returns once applied.
    pub async fn update_rules(
        &self,
        update: impl FnOnce(&mut K::Verifier) + Send + 'static,
    ) -> Result<(), SubmitError<K::VerifyError>> {
        self.inner
            .jobs
            .send(Job::Rules(Box::new(update)))
            .await
            .map_err(|_| SubmitError::Stopped)
    }

    /// Checks peers' gossiped shares against `context` from now on (see [`context`]).
    pub fn set_context(&self, context: Arc<dyn ShareContext<K>>) {
        *self.inner.context.lock() = Some(context);
    }

    /// What the held set has done (shares held, released, expired, refused and why).
    pub fn context_counts(&self) -> ContextCounts {
        self.inner.held.lock().counts.clone()
    }

    /// Whether the node is too far behind its peers to hand out work, and why.
    pub fn sync_status(&self) -> SyncStatus {
        SyncStatus::clone(&self.inner.sync.load())
    }

    /// A summary for the HTTP API.
    pub fn snapshot(&self) -> ShareSnapshot {
        let view = self.view();
        let peers = self.inner.peers.lock().len();
        let sync = self.sync_status();
        ShareSnapshot {
            best: view.best.map(|b| b.to_string()),
            height: view.height,
            shares: view.shares,
            verified_heads: view.verified_heads.len(),
            missing_parents: view.missing_parents,
            peers,
            received: self.inner.received.load(Ordering::Relaxed),
            invalid: self.inner.invalid.load(Ordering::Relaxed),
            sync,
        }
    }

    /// Stops the worker (closing the store) and the share network.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.jobs.send(Job::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
        self.inner.p2p.shutdown().await;
    }
}

/// Asks the worker to check held shares again every [`context::RECHECK_EVERY`] while any is
/// held.
async fn context_ticker<K: ShareKind>(inner: std::sync::Weak<Inner<K>>) {
    let mut tick = tokio::time::interval(context::RECHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if !inner.held.lock().is_empty() {
            // A full queue means the worker is busy: the next tick asks again.
            let _ = inner.jobs.try_send(Job::Recheck);
        }
    }
}

impl<K: ShareKind> Inner<K> {
    /// The published sync status.
    fn sync_status(&self) -> SyncStatus {
        SyncStatus::clone(&self.sync.load())
    }

    /// The sync status of `t` against the peers' chains.
    fn sync_status_of(&self, t: &KindTracker<K>) -> SyncStatus {
        // Never waits on `peers` while others wait on the tracker: peers are copied out first.
        let peers: Vec<PeerChain> = self.peers.lock().values().copied().collect();
        Self::status_against(t, &peers)
    }

    /// Recomputes the sync status after a peer's claim changed.
    fn refresh_sync(&self) {
        let peers: Vec<PeerChain> = self.peers.lock().values().copied().collect();
        let status = Self::status_against(&self.tracker.lock(), &peers);
        self.sync.store(Arc::new(status));
    }

    /// The best share's height against the highest height `peers` back up.
    fn status_against(t: &KindTracker<K>, peers: &[PeerChain]) -> SyncStatus {
        let height = t.best().map(|b| K::height(t.chain(), &b)).unwrap_or(0);
        let peer_height = peers
            .iter()
            .map(|p| p.backed_height::<K>(t))
            .max()
            .unwrap_or(0);
        SyncStatus::new(height, peer_height)
    }

    /// Publishes the view of `t` (and its sync status): the worker calls it after every change
    /// that matters, before telling anyone of a new best share.
    fn publish(&self, t: &KindTracker<K>) {
        let previous = self.view.load();
        let view = ChainView::of(self.params, t, Some(&previous));
        self.view.store(Arc::new(view));
        self.sync.store(Arc::new(self.sync_status_of(t)));
    }

    fn status(&self) -> ChainStatus {
        let view = self.view.load();
        ChainStatus {
            best: view.best,
            height: view.height,
        }
    }

    /// What `peer` says its best share is (a later claim of a lower height is ignored).
    fn note_status(&self, peer: PeerId, status: ChainStatus) {
        self.peers
            .lock()
            .entry(peer)
            .or_default()
            .note_status(status);
        self.refresh_sync();
    }

    /// A share `peer` gossiped and this node took in: the peer has at least that chain.
    fn note_sent(&self, peer: PeerId, height: u32, hash: ShareHash) {
        self.peers
            .lock()
            .entry(peer)
            .or_default()
            .note_sent(height, hash);
        self.refresh_sync();
    }
}
