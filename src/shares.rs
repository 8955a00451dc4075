//! The share service: owns the [`Tracker`], the [`ShareStore`] and the share network's
//! [`P2pHandle`], and runs the insert pipeline
//!
//! ```text
//! bytes (gossip / sync) ─► decode + stand-alone checks ─► tracker insert (verify) ─► store (durable)
//!      ─► forward gossip / publish ─► request missing parents ─► penalise senders of invalid shares
//! ```
//!
//! on one worker thread, off the swarm's event loop and off the async runtime. It answers peers'
//! sync requests, drives the initial sync (ask each new peer for its status, fetch its best share
//! and up to 999 ancestors a round trip until the chain is complete), and tells the node whether it
//! is too far behind its peers to hand out work.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::BlockHash;
use libp2p::gossipsub::MessageAcceptance;
use libp2p::PeerId;
use parking_lot::Mutex;
use sharechain::encode::Encode;
use sharechain::share::ShareError;
use sharechain::tracker::InsertError;
use sharechain::{new_tracker, CheckedShare, NetworkParams, ShareHash, Tracker, VerifyError};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

use crate::p2p::handle::Command;
use crate::p2p::protocol::{MAX_PARENTS, MAX_RESPONSE_BYTES, MAX_STOPS, MAX_WANT};
use crate::p2p::{ChainStatus, Inbound, Offence, P2pHandle, SyncRequest, SyncResponse, Via};
use crate::store::{ShareStore, StoreBatch, StoreError};

/// A node this many shares below its best peer refuses to hand out share-chain work.
pub const BEHIND_THRESHOLD: u32 = 10;
const JOB_QUEUE: usize = 256;
/// How often missing parents are re-requested (from any peer) and progress is logged.
const SYNC_TICK: Duration = Duration::from_secs(2);

/// Why a local share was not taken.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("{0}")]
    Insert(#[from] InsertError),
    #[error("share is invalid on the chain: {0}")]
    Invalid(VerifyError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("share service stopped")]
    Stopped,
}

/// Why the service could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("share network: {0}")]
    P2p(#[from] crate::p2p::P2pError),
}

/// Whether the node may hand out share-chain work.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncStatus {
    /// True while the node is far behind its peers: do not give miners work on this chain.
    pub behind: bool,
    /// Why (empty when not behind).
    pub reason: String,
    /// Absolute height of our best share (0 without one).
    pub height: u32,
    /// Highest best-share height a peer advertised.
    pub peer_height: u32,
}

/// A read-only summary for the HTTP API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShareSnapshot {
    pub best: Option<String>,
    pub height: u32,
    pub shares: usize,
    pub verified_heads: usize,
    pub missing_parents: usize,
    pub peers: usize,
    pub received: u64,
    pub invalid: u64,
    pub sync: SyncStatus,
}

enum Job {
    Shares {
        from: PeerId,
        shares: Vec<Vec<u8>>,
        via: Via,
    },
    Local {
        share: CheckedShare,
        reply: oneshot::Sender<Result<ShareHash, SubmitError>>,
    },
    /// A new tip is in `pending_tip`.
    SetTip,
    Stop(oneshot::Sender<()>),
}

struct Inner {
    params: &'static NetworkParams,
    tracker: Mutex<Tracker>,
    p2p: P2pHandle,
    best_tx: watch::Sender<Option<ShareHash>>,
    peers: Mutex<HashMap<PeerId, PeerChain>>,
    inflight: Mutex<HashSet<ShareHash>>,
    jobs: mpsc::Sender<Job>,
    rt: tokio::runtime::Handle,
    received: AtomicU64,
    invalid: AtomicU64,
    /// When each share this run took in arrived, and from whom (entries leave with their share).
    seen: Mutex<HashMap<ShareHash, FirstSeen>>,
    /// The latest Bitcoin tip not yet applied: set without waiting on the job queue, applied
    /// by the worker after whatever job it is on.
    pending_tip: Mutex<Option<Option<BlockHash>>>,
}

/// What a peer's chain is known to be.
#[derive(Debug, Clone, Copy, Default)]
struct PeerChain {
    /// Its best share and height as it last said.
    claim: ChainStatus,
    /// The highest share (height, hash) it gossiped that this node took in.
    sent: Option<(u32, ShareHash)>,
}

/// A peer's share counts toward its height only with at least this fraction of the work of the
/// node's best share: a share at the easiest target costs next to nothing to make.
const BACKING_WORK_DIVISOR: u128 = 4;

impl PeerChain {
    /// The peer's height as far as shares this node holds back it: its claimed best once held,
    /// or the highest share it gossiped, at the height that share carries, if its proof of work
    /// is near the node's own share difficulty. A bare claim counts for nothing, so a peer
    /// cannot stop the node's work by lying about its chain.
    fn backed_height(&self, t: &Tracker) -> u32 {
        let floor = t
            .best()
            .and_then(|b| t.chain().get(&b))
            .map_or(0, |s| s.work() / BACKING_WORK_DIVISOR);
        [self.claim.best, self.sent.map(|(_, h)| h)]
            .into_iter()
            .flatten()
            .filter_map(|h| t.chain().get(&h))
            .filter(|s| s.work() >= floor)
            .map(|s| s.share().share_info.absheight)
            .max()
            .unwrap_or(0)
    }
}

/// When this node first took a share in, and from whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstSeen {
    /// Unix time, seconds.
    pub time: u64,
    /// The peer that sent it; `None` for a share of this node's own miners.
    pub peer: Option<PeerId>,
}

/// The share service. Cheap to clone.
#[derive(Clone)]
pub struct ShareService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ShareService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareService")
            .field("network", &self.inner.params.name)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn absheight(tracker: &Tracker, hash: &ShareHash) -> u32 {
    tracker
        .chain()
        .get(hash)
        .map(|s| s.share().share_info.absheight)
        .unwrap_or(0)
}

/// Orders shares so that every parent comes before its children (roots first).
fn parent_first(shares: Vec<CheckedShare>) -> Vec<CheckedShare> {
    let held: HashSet<ShareHash> = shares.iter().map(CheckedShare::hash).collect();
    let mut children: HashMap<ShareHash, Vec<usize>> = HashMap::new();
    let mut queue = VecDeque::new();
    for (i, s) in shares.iter().enumerate() {
        match s.prev_hash().filter(|p| held.contains(p)) {
            Some(p) => children.entry(p).or_default().push(i),
            None => queue.push_back(i),
        }
    }
    let mut slots: Vec<Option<CheckedShare>> = shares.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    while let Some(i) = queue.pop_front() {
        let Some(s) = slots[i].take() else { continue };
        if let Some(c) = children.remove(&s.hash()) {
            queue.extend(c);
        }
        out.push(s);
    }
    out
}

impl ShareService {
    /// Everything in one call, for the node: opens `datadir/shares.redb`, starts the share
    /// network with `config` (its `datadir` defaults to `datadir`: node key, address book) and
    /// the service on top.
    pub async fn open(
        datadir: &std::path::Path,
        mut config: crate::p2p::P2pConfig,
    ) -> Result<ShareService, StartError> {
        std::fs::create_dir_all(datadir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        let params = config.params;
        config.datadir.get_or_insert_with(|| datadir.to_owned());
        let store = ShareStore::open(&datadir.join("shares.redb"))?;
        let (p2p, inbound) = crate::p2p::spawn(config).await?;
        Self::start(params, store, p2p, inbound).await
    }

    /// Loads the chain from `store` (re-checking and re-verifying every share), then starts the
    /// worker and the network dispatcher on the current runtime.
    pub async fn start(
        params: &'static NetworkParams,
        store: ShareStore,
        p2p: P2pHandle,
        inbound: mpsc::Receiver<Inbound>,
    ) -> Result<ShareService, StartError> {
        let (store, tracker) =
            tokio::task::spawn_blocking(move || load(params, store).map(|t| (t.1, t.0)))
                .await
                .expect("loading does not panic")?;
        let (best_tx, _) = watch::channel(tracker.best());
        let (jobs, jobs_rx) = mpsc::channel(JOB_QUEUE);
        let inner = Arc::new(Inner {
            params,
            tracker: Mutex::new(tracker),
            p2p,
            best_tx,
            peers: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashSet::new()),
            jobs,
            rt: tokio::runtime::Handle::current(),
            received: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
            pending_tip: Mutex::new(None),
            invalid: AtomicU64::new(0),
        });
        let worker = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("share-worker".into())
            .spawn(move || worker.run(jobs_rx, store))
            .expect("spawning a thread");
        tokio::spawn(dispatch(Arc::clone(&inner), inbound));
        tokio::spawn(sync_ticker(Arc::downgrade(&inner)));
        Ok(ShareService { inner })
    }

    /// The network's parameters.
    pub fn params(&self) -> &'static NetworkParams {
        self.inner.params
    }

    /// The share network handle (to publish found blocks and tips, list peers).
    pub fn p2p(&self) -> &P2pHandle {
        &self.inner.p2p
    }

    /// The best share to build on.
    pub fn best_share_hash(&self) -> Option<ShareHash> {
        self.inner.tracker.lock().best()
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

    /// Runs `f` on the tracker (e.g. `sharechain::generate` on `tracker.parts()` to build work).
    /// Do not insert through it: shares enter through [`Self::submit_local_share`] so they are
    /// stored and gossiped.
    pub fn with_tracker<R>(&self, f: impl FnOnce(&mut Tracker) -> R) -> R {
        f(&mut self.inner.tracker.lock())
    }

    /// When `hash` arrived and from whom; `None` for shares loaded from the store (or unknown).
    pub fn first_seen(&self, hash: &ShareHash) -> Option<FirstSeen> {
        self.inner.seen.lock().get(hash).copied()
    }

    /// A share found by this node's miners: inserted, stored durably, then gossiped. Returns its
    /// hash once it is stored.
    pub async fn submit_local_share(&self, share: CheckedShare) -> Result<ShareHash, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .jobs
            .send(Job::Local { share, reply })
            .await
            .map_err(|_| SubmitError::Stopped)?;
        rx.await.map_err(|_| SubmitError::Stopped)?
    }

    /// The bitcoin tip shares should build on (may change the best share).
    pub async fn set_tip(&self, tip: Option<BlockHash>) {
        // Never waits behind a busy share worker: only the latest tip matters, and the worker
        // takes it after its current job even when this wake-up finds the queue full.
        *self.inner.pending_tip.lock() = Some(tip);
        let _ = self.inner.jobs.try_send(Job::SetTip);
    }

    /// Whether the node is too far behind its peers to hand out work, and why.
    pub fn sync_status(&self) -> SyncStatus {
        self.inner.sync_status()
    }

    /// A summary for the HTTP API.
    pub fn snapshot(&self) -> ShareSnapshot {
        let (best, height, shares, heads, missing) = {
            let t = self.inner.tracker.lock();
            let best = t.best();
            (
                best,
                best.map(|b| absheight(&t, &b)).unwrap_or(0),
                t.chain().len(),
                t.verified_heads().len(),
                t.missing_parents().len(),
            )
        };
        let peers = self.inner.peers.lock().len();
        let sync = self.sync_status();
        ShareSnapshot {
            best: best.map(|b| b.to_string()),
            height,
            shares,
            verified_heads: heads,
            missing_parents: missing,
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

/// Loads and verifies the stored chain; deletes what no longer belongs (invalid, pruned).
fn load(
    params: &'static NetworkParams,
    store: ShareStore,
) -> Result<(Tracker, ShareStore), StoreError> {
    let started = Instant::now();
    let rows = store.load()?;
    let now = unix_now();
    let mut bad = Vec::new();
    let mut checked = Vec::with_capacity(rows.len());
    for (hash, bytes) in rows {
        match CheckedShare::from_bytes(&bytes, params, now) {
            Ok(s) if s.hash() == hash => checked.push(s),
            _ => bad.push(hash),
        }
    }
    let mut tracker = new_tracker(params);
    let count = checked.len();
    for share in parent_first(checked) {
        match tracker.insert(share) {
            Ok(ch) => {
                bad.extend(ch.invalid.iter().map(|r| r.hash));
                bad.extend(ch.pruned);
            }
            Err(InsertError::InvalidParent { share, dropped, .. }) => {
                bad.push(share);
                bad.extend(dropped);
            }
            Err(_) => {}
        }
    }
    if !bad.is_empty() {
        store.apply(&StoreBatch {
            remove: bad.clone(),
            ..StoreBatch::default()
        })?;
    }
    tracing::info!(
        network = params.name,
        loaded = count,
        dropped = bad.len(),
        best = ?tracker.best(),
        ms = started.elapsed().as_millis() as u64,
        "share chain loaded from the store"
    );
    Ok((tracker, store))
}

/// Routes what the network delivers.
async fn dispatch(inner: Arc<Inner>, mut inbound: mpsc::Receiver<Inbound>) {
    while let Some(msg) = inbound.recv().await {
        match msg {
            Inbound::Shares { from, shares, via } => {
                if inner
                    .jobs
                    .send(Job::Shares { from, shares, via })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Inbound::Request {
                from,
                request,
                reply,
            } => {
                let inner = Arc::clone(&inner);
                tokio::spawn(async move {
                    let i = Arc::clone(&inner);
                    let Ok(response) = tokio::task::spawn_blocking(move || i.serve(&request)).await
                    else {
                        return;
                    };
                    tracing::trace!(peer = %from, "answering a sync request");
                    inner.p2p.respond(reply, response).await;
                });
            }
            Inbound::PeerReady(peer) => {
                tokio::spawn(Arc::clone(&inner).initial_sync(peer));
            }
            Inbound::PeerGone(peer) => {
                inner.peers.lock().remove(&peer);
            }
        }
    }
}

/// Re-requests missing parents from any peer (a request may have failed or a peer left) and
/// logs sync progress while behind.
async fn sync_ticker(inner: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(SYNC_TICK);
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        ticks += 1;
        let Some(inner) = inner.upgrade() else { return };
        // Peers whose best chain we lack (or who had none when asked): ask again, so a status
        // taken while they were still syncing themselves does not leave us behind.
        let stale: Vec<PeerId> = {
            let peers = inner.peers.lock();
            let t = inner.tracker.lock();
            peers
                .iter()
                .filter(|(_, s)| match s.claim.best {
                    Some(b) => !t.chain().contains(&b) && !t.is_known_invalid(&b),
                    None => ticks % 5 == 0,
                })
                .map(|(p, _)| *p)
                .collect()
        };
        for peer in stale {
            tokio::spawn(Arc::clone(&inner).initial_sync(peer));
        }
        let missing = inner.tracker.lock().missing_parents();
        let peers: Vec<PeerId> = inner.peers.lock().keys().copied().collect();
        if !missing.is_empty() && !peers.is_empty() {
            for (i, hash) in missing.into_iter().take(MAX_WANT).enumerate() {
                inner.request_shares(peers[i % peers.len()], hash);
            }
        }
        let status = inner.sync_status();
        if status.behind {
            tracing::info!(
                height = status.height,
                peers = status.peer_height,
                "share chain sync: {}",
                status.reason
            );
        }
    }
}

impl Inner {
    fn sync_status(&self) -> SyncStatus {
        let (height, peer_height) = {
            let peers = self.peers.lock();
            let t = self.tracker.lock();
            let height = t.best().map(|b| absheight(&t, &b)).unwrap_or(0);
            let peer_height = peers
                .values()
                .map(|p| p.backed_height(&t))
                .max()
                .unwrap_or(0);
            (height, peer_height)
        };
        let behind = peer_height > height.saturating_add(BEHIND_THRESHOLD);
        let reason = if behind {
            format!(
                "share chain is syncing: our best share is at height {height}, peers are at \
                 {peer_height}"
            )
        } else {
            String::new()
        };
        SyncStatus {
            behind,
            reason,
            height,
            peer_height,
        }
    }

    fn status(&self) -> ChainStatus {
        let t = self.tracker.lock();
        let best = t.best();
        ChainStatus {
            best,
            height: best.map(|b| absheight(&t, &b)).unwrap_or(0),
        }
    }

    /// What `peer` says its best share is (a later claim of a lower height is ignored).
    fn note_status(&self, peer: PeerId, status: ChainStatus) {
        let mut peers = self.peers.lock();
        let entry = peers.entry(peer).or_default();
        if status.best.is_some() && status.height >= entry.claim.height {
            entry.claim = status;
        }
    }

    /// A share `peer` gossiped and this node took in: the peer has at least that chain.
    fn note_sent(&self, peer: PeerId, height: u32, hash: ShareHash) {
        let mut peers = self.peers.lock();
        let entry = peers.entry(peer).or_default();
        if entry.sent.is_none_or(|(h, _)| height > h) {
            entry.sent = Some((height, hash));
        }
    }

    /// Answers a sync request from the tracker.
    fn serve(&self, request: &SyncRequest) -> SyncResponse {
        match request {
            SyncRequest::Status => SyncResponse::Status(self.status()),
            SyncRequest::Shares {
                want,
                parents,
                stops,
            } => {
                let stops: HashSet<&ShareHash> = stops.iter().collect();
                let limit = (*parents).min(MAX_PARENTS) as usize + 1;
                let mut shares = Vec::new();
                let mut bytes = 0usize;
                let t = self.tracker.lock();
                'want: for w in want.iter().take(MAX_WANT) {
                    for s in t.chain().ancestors(w).take(limit) {
                        if stops.contains(&s.hash()) {
                            break;
                        }
                        let enc = s.share().to_bytes();
                        bytes += enc.len() + 5;
                        if bytes > MAX_RESPONSE_BYTES - 1024 {
                            break 'want;
                        }
                        shares.push(enc);
                    }
                }
                let best = t.best();
                let status = ChainStatus {
                    best,
                    height: best.map(|b| absheight(&t, &b)).unwrap_or(0),
                };
                SyncResponse::Shares { status, shares }
            }
        }
    }

    /// Asks a new peer for its status and fetches its best chain when we lack it.
    async fn initial_sync(self: Arc<Self>, peer: PeerId) {
        match self.p2p.request(peer, SyncRequest::Status).await {
            Ok(SyncResponse::Status(status)) | Ok(SyncResponse::Shares { status, .. }) => {
                self.note_status(peer, status);
                let Some(best) = status.best else { return };
                let known = {
                    let t = self.tracker.lock();
                    t.chain().contains(&best) || t.is_known_invalid(&best)
                };
                if !known {
                    tracing::info!(%peer, height = status.height, "share chain sync: fetching the peer's best chain");
                    self.request_shares(peer, best);
                }
            }
            Err(e) => tracing::debug!(%peer, "status request: {e}"),
        }
    }

    /// Fetches `hash` and up to [`MAX_PARENTS`] of its ancestors from `peer` (unless already
    /// being fetched); the reply goes to the worker.
    fn request_shares(self: &Arc<Self>, peer: PeerId, hash: ShareHash) {
        if !self.inflight.lock().insert(hash) {
            return;
        }
        let inner = Arc::clone(self);
        self.rt.spawn(async move {
            let stops: Vec<ShareHash> = {
                let t = inner.tracker.lock();
                let mut heads = t.verified_heads();
                heads.truncate(MAX_STOPS);
                heads
            };
            let request = SyncRequest::Shares {
                want: vec![hash],
                parents: MAX_PARENTS - 1,
                stops,
            };
            match inner.p2p.request(peer, request).await {
                Ok(SyncResponse::Shares { status, shares }) => {
                    inner.note_status(peer, status);
                    if !shares.is_empty() {
                        let _ = inner
                            .jobs
                            .send(Job::Shares {
                                from: peer,
                                shares,
                                via: Via::Sync,
                            })
                            .await;
                    }
                }
                Ok(SyncResponse::Status(_)) => {}
                Err(e) => tracing::debug!(%peer, %hash, "share request: {e}"),
            }
            inner.inflight.lock().remove(&hash);
        });
    }

    /// The worker: the insert pipeline, one job at a time.
    fn run(self: Arc<Self>, mut jobs: mpsc::Receiver<Job>, store: ShareStore) {
        while let Some(job) = jobs.blocking_recv() {
            let tip = self.pending_tip.lock().take();
            if let Some(tip) = tip {
                self.apply_tip(&store, tip);
            }
            match job {
                Job::Shares { from, shares, via } => self.ingest(&store, from, shares, via),
                Job::Local { share, reply } => {
                    let _ = reply.send(self.ingest_local(&store, share));
                }
                // Applied above from `pending_tip`, which holds the latest.
                Job::SetTip => {}
                Job::Stop(done) => {
                    drop(store);
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    /// The Bitcoin tip changed: the best share may change with it.
    fn apply_tip(&self, store: &ShareStore, tip: Option<BlockHash>) {
        let (changes, best) = {
            let mut t = self.tracker.lock();
            let ch = t.set_tip(tip);
            (ch, t.best())
        };
        if changes.best.is_some() {
            let _ = store.apply(&StoreBatch {
                best,
                ..StoreBatch::default()
            });
            self.best_tx.send_replace(best);
        }
    }

    fn ingest_local(
        &self,
        store: &ShareStore,
        share: CheckedShare,
    ) -> Result<ShareHash, SubmitError> {
        let hash = share.hash();
        let bytes = share.share().to_bytes();
        let mut outcome = self.insert_batch(vec![(share, bytes.clone())], None);
        if let Some(e) = outcome.errors.pop() {
            return Err(e);
        }
        store.apply(&outcome.batch)?;
        if outcome.best_changed {
            self.best_tx.send_replace(outcome.best);
        }
        self.p2p.send_nowait(
            Command::Publish {
                topic: crate::p2p::handle::Topic::Shares,
                data: bytes,
            },
            &self.rt,
        );
        Ok(hash)
    }

    fn ingest(self: &Arc<Self>, store: &ShareStore, from: PeerId, shares: Vec<Vec<u8>>, via: Via) {
        self.received
            .fetch_add(shares.len() as u64, Ordering::Relaxed);
        let now = unix_now();
        let mut offence = None;
        let mut checked = Vec::with_capacity(shares.len());
        // Sync replies come newest first; insert parents first.
        for bytes in shares.into_iter().rev() {
            match CheckedShare::from_bytes(&bytes, self.params, now) {
                Ok(s) => checked.push((s, bytes)),
                // Clock skew between honest nodes: drop the share, keep the peer.
                Err(ShareError::FutureTimestamp { .. }) => {}
                Err(ShareError::Decode(e)) => offence = Some(Offence::Undecodable(e.to_string())),
                Err(e) => offence = Some(Offence::InvalidShare(e.to_string())),
            }
        }
        let outcome = self.insert_batch(checked, Some(from));
        if let Some(e) = outcome.errors.first() {
            offence = Some(Offence::InvalidShare(e.to_string()));
        }
        if let Err(e) = store.apply(&outcome.batch) {
            tracing::error!("share store write failed: {e}");
        }
        if outcome.best_changed {
            self.best_tx.send_replace(outcome.best);
            if let Some(best) = outcome.best {
                let height = absheight(&self.tracker.lock(), &best);
                tracing::debug!(%best, height, "new best share");
            }
        }
        if matches!(via, Via::Sync) && !outcome.batch.put.is_empty() {
            let (held, missing) = {
                let t = self.tracker.lock();
                (t.chain().len(), t.missing_parents().len())
            };
            let peer_height = self.sync_status().peer_height;
            tracing::info!(
                peer = %from,
                received = outcome.batch.put.len(),
                held,
                height = outcome.best.map(|b| absheight(&self.tracker.lock(), &b)).unwrap_or(0),
                peer_height,
                complete = missing == 0,
                "share chain sync progress"
            );
        }
        if let Via::Gossip(id) = via {
            let acceptance = if offence.is_some() {
                MessageAcceptance::Reject
            } else if outcome.batch.put.is_empty() {
                MessageAcceptance::Ignore
            } else {
                MessageAcceptance::Accept
            };
            self.p2p.send_nowait(
                Command::Validated {
                    id,
                    source: from,
                    acceptance,
                },
                &self.rt,
            );
            if let Some((height, hash)) = outcome.top {
                self.note_sent(from, height, hash);
            }
        }
        if let Some(offence) = offence {
            self.invalid.fetch_add(1, Ordering::Relaxed);
            self.peers.lock().remove(&from);
            self.p2p.send_nowait(
                Command::Penalise {
                    peer: from,
                    offence,
                },
                &self.rt,
            );
            return;
        }
        for hash in outcome.missing {
            self.request_shares(from, hash);
        }
    }

    /// Inserts shares (parents first; from `peer`, or this node's miners) and collects what to
    /// store, what to ask for and what went wrong.
    fn insert_batch(&self, shares: Vec<(CheckedShare, Vec<u8>)>, peer: Option<PeerId>) -> Outcome {
        let mut out = Outcome::default();
        let mut t = self.tracker.lock();
        let before = t.best();
        let ours: HashSet<ShareHash> = shares.iter().map(|(s, _)| s.hash()).collect();
        for (share, bytes) in shares {
            let hash = share.hash();
            let height = share.share().share_info.absheight;
            match t.insert(share) {
                Ok(ch) => {
                    out.batch.put.push((hash, bytes));
                    if out.top.is_none_or(|(h, _)| height > h) {
                        out.top = Some((height, hash));
                    }
                    for r in &ch.invalid {
                        if r.direct && ours.contains(&r.hash) {
                            out.errors.push(SubmitError::Invalid(r.error.clone()));
                        }
                        out.batch.remove.push(r.hash);
                    }
                    out.batch.remove.extend(ch.pruned);
                    out.missing.extend(ch.missing_parents);
                }
                Err(InsertError::Duplicate(_)) => {}
                Err(InsertError::InvalidParent {
                    share,
                    parent,
                    dropped,
                }) => {
                    out.batch.remove.extend(dropped.iter().copied());
                    out.errors
                        .push(SubmitError::Insert(InsertError::InvalidParent {
                            share,
                            parent,
                            dropped,
                        }));
                }
                Err(e) => out.errors.push(SubmitError::Insert(e)),
            }
        }
        out.best = t.best();
        out.best_changed = out.best != before;
        if out.best_changed {
            out.batch.best = out.best;
        }
        let removed: HashSet<ShareHash> = out.batch.remove.iter().copied().collect();
        out.missing
            .retain(|m| !removed.contains(m) && !t.chain().contains(m));
        drop(t);
        let seen = FirstSeen {
            time: unix_now(),
            peer,
        };
        let mut log = self.seen.lock();
        for (hash, _) in &out.batch.put {
            log.entry(*hash).or_insert(seen);
        }
        for hash in &out.batch.remove {
            log.remove(hash);
        }
        drop(log);
        out
    }
}

#[derive(Default)]
struct Outcome {
    batch: StoreBatch,
    errors: Vec<SubmitError>,
    missing: Vec<ShareHash>,
    best: Option<ShareHash>,
    best_changed: bool,
    /// The highest share inserted (height, hash).
    top: Option<(u32, ShareHash)>,
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::Hash;
    use bitcoin::BlockHash;
    use sharechain::build::generate;
    use sharechain::target::scale;
    use sharechain::testkit::{easy_params, mine, p2wpkh, request};

    use super::*;

    /// `n` shares paying `tag`, each at `max_target / divisor` (`n` below the retarget
    /// look-behind, which would otherwise set the target).
    fn chain(params: &'static NetworkParams, n: u32, tag: u32, divisor: u64) -> Vec<CheckedShare> {
        let mut t = new_tracker(params);
        let mut out: Vec<CheckedShare> = Vec::new();
        for i in 0..n {
            let parent = out.last().map(CheckedShare::hash);
            let mut req = request(params, parent, p2wpkh(tag), 1_700_000_000 + i, i);
            req.desired_target = scale(params.max_target(), 1, divisor);
            let (c, v) = t.parts();
            let template = generate(c, v.pplns_mut(), params, &req).expect("template");
            let share = mine(
                params,
                &template,
                BlockHash::all_zeros(),
                1_700_000_000 + i,
                0,
            );
            t.insert(share.clone()).expect("insert");
            out.push(share);
        }
        out
    }

    fn best_work(t: &Tracker) -> u128 {
        t.best()
            .and_then(|b| t.chain().get(&b))
            .map_or(0, |s| s.work())
    }

    #[test]
    fn a_peer_height_needs_a_held_share_near_the_node_difficulty() {
        let params = easy_params(&NetworkParams::REGTEST, 100, 10);
        let mut t = new_tracker(params);
        for share in chain(params, 3, 1, 16) {
            t.insert(share).expect("insert");
        }
        let easy_tip = chain(params, 9, 2, 1).pop().expect("tip");
        let fair_tip = chain(params, 9, 3, 8).pop().expect("tip");
        let status = |s: &CheckedShare| ChainStatus {
            best: Some(s.hash()),
            height: s.share().share_info.absheight,
        };

        // Claims of shares not held count for nothing.
        let mut peer = PeerChain {
            claim: status(&fair_tip),
            sent: None,
        };
        assert_eq!(peer.backed_height(&t), 0);

        assert_eq!(
            (easy_tip.work() * 16, fair_tip.work() * 2),
            (best_work(&t), best_work(&t))
        );
        // Held, but with a sixteenth of the best share's work: still nothing.
        t.insert(easy_tip.clone()).expect("insert an orphan");
        peer.claim = status(&easy_tip);
        assert_eq!(peer.backed_height(&t), 0);
        peer.sent = Some((9, easy_tip.hash()));
        assert_eq!(peer.backed_height(&t), 0);

        // Held, with half the best share's work: the height it carries counts.
        t.insert(fair_tip.clone()).expect("insert an orphan");
        peer.claim = status(&fair_tip);
        assert_eq!(peer.backed_height(&t), 9);
        peer = PeerChain {
            claim: ChainStatus::default(),
            sent: Some((9, fair_tip.hash())),
        };
        assert_eq!(peer.backed_height(&t), 9);
    }
}
