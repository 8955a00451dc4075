//! The sync protocol: routing what the network delivers, answering peers' requests from the
//! tracker, the initial sync with each new peer, and re-requesting missing parents.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use libp2p::PeerId;
use sharechain::tracker::TrackedShare;
use sharechain::ShareHash;
use tokio::sync::mpsc;

use super::height::PeerChain;
use super::kind::ShareKind;
use super::{Inner, Job};
use crate::p2p::protocol::{MAX_PARENTS, MAX_RESPONSE_BYTES, MAX_STOPS, MAX_WANT};
use crate::p2p::{ChainStatus, Inbound, SyncRequest, SyncResponse, Via};

/// How often missing parents are re-requested (from any peer) and progress is logged.
const SYNC_TICK: Duration = Duration::from_secs(2);

/// Routes what the network delivers.
pub(super) async fn dispatch<K: ShareKind>(
    inner: Arc<Inner<K>>,
    mut inbound: mpsc::Receiver<Inbound>,
) {
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
                inner.refresh_sync();
            }
        }
    }
}

/// Re-requests missing parents from any peer (a request may have failed or a peer left) and
/// logs sync progress while behind.
pub(super) async fn sync_ticker<K: ShareKind>(inner: Weak<Inner<K>>) {
    let mut tick = tokio::time::interval(SYNC_TICK);
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        ticks += 1;
        let Some(inner) = inner.upgrade() else { return };
        // Peers whose best chain we lack (or who had none when asked): ask again, so a status
        // taken while they were still syncing themselves does not leave us behind.
        let stale: Vec<PeerId> = {
            // Peers copied out first: nothing waits on `peers` while holding the tracker.
            let peers: Vec<(PeerId, PeerChain)> =
                inner.peers.lock().iter().map(|(p, s)| (*p, *s)).collect();
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
                kind = K::NAME,
                height = status.height,
                peers = status.peer_height,
                "share chain sync: {}",
                status.reason
            );
        }
    }
}

impl<K: ShareKind> Inner<K> {
    /// Answers a sync request from the tracker.
    pub(super) fn serve(&self, request: &SyncRequest) -> SyncResponse {
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
                        let enc = K::encode(s);
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
                    height: best.map(|b| K::height(t.chain(), &b)).unwrap_or(0),
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
                    tracing::info!(kind = K::NAME, %peer, height = status.height, "share chain sync: fetching the peer's best chain");
                    self.request_shares(peer, best);
                }
            }
            Err(e) => tracing::debug!(%peer, "status request: {e}"),
        }
    }

    /// Fetches `hash` and up to [`MAX_PARENTS`] of its ancestors from `peer` (unless already
    /// being fetched); the reply goes to the worker.
    pub(super) fn request_shares(self: &Arc<Self>, peer: PeerId, hash: ShareHash) {
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
}
