//! Where checked PoSpace shares go: [`PoSpaceShareSink`], a small async interface (the share a
//! new one builds on and its difficulty, signage points the node now knows, and submitting a
//! share), and [`TrackerSink`], an in-process service owning a PoSpace tracker behind a bounded
//! channel.

use std::collections::VecDeque;

use futures::future::BoxFuture;
use sharechain::pospace_share::{
    new_pospace_tracker, ChiaNetwork, PoSpaceShare, PoSpaceTracker, ShareError, SignagePoint,
};
use sharechain::share::ShareHash;
use sharechain::tracker::InsertError;
use tokio::sync::{mpsc, oneshot, watch};

/// Requests waiting for the tracker service.
const QUEUE: usize = 256;
/// Signage points the tracker's verifier keeps (older ones are forgotten).
const KNOWN_SIGNAGE_POINTS: usize = 512;

/// Adds `sp` to `known`, the signage points a verifier holds (oldest first); the one that falls
/// out of the window, for the verifier to forget.
pub(crate) fn remember(
    known: &mut VecDeque<SignagePoint>,
    sp: SignagePoint,
) -> Option<SignagePoint> {
    known.push_back(sp);
    if known.len() > KNOWN_SIGNAGE_POINTS {
        known.pop_front()
    } else {
        None
    }
}

/// What a new share builds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareWork {
    /// The parent (the best share), `None` for the first share of a chain.
    pub prev: Option<ShareHash>,
    /// The difficulty the chain requires of a share on `prev`.
    pub difficulty: u64,
}

/// Why a share was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The share service is gone (shutting down).
    #[error("share service stopped")]
    Stopped,
    /// Too many shares waiting.
    #[error("share service busy: share dropped")]
    Busy,
    /// The tracker refused the share.
    #[error("tracker refused the share: {0}")]
    Insert(#[from] InsertError),
    /// The chain rules refused the share.
    #[error("share invalid: {0}")]
    Invalid(ShareError),
    /// The share could not be stored (nothing was acknowledged).
    #[error("share store: {0}")]
    Store(String),
}

/// The node's PoSpace share service as the farmer endpoint uses it.
pub trait PoSpaceShareSink: Send + Sync + 'static {
    /// What a share made now builds on.
    fn work(&self) -> ShareWork;
    /// A signage point the node now knows (the tracker may verify shares on it).
    fn signage_point(&self, sp: SignagePoint);
    /// A share that passed `check_share`; resolves once the service took it (its hash) or
    /// refused it. Bounded: a full queue refuses at once.
    fn submit(&self, share: PoSpaceShare) -> BoxFuture<'static, Result<ShareHash, SinkError>>;
}

enum Request {
    Submit(PoSpaceShare, oneshot::Sender<Result<ShareHash, SinkError>>),
    SignagePoint(SignagePoint),
    Shares(oneshot::Sender<Vec<PoSpaceShare>>),
}

/// A share service in the process: a task owning a [`PoSpaceTracker`].
#[derive(Debug, Clone)]
pub struct TrackerSink {
    requests: mpsc::Sender<Request>,
    work: watch::Receiver<ShareWork>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Submit(..) => "Submit",
            Request::SignagePoint(_) => "SignagePoint",
            Request::Shares(_) => "Shares",
        })
    }
}

pub(super) fn work_of(tracker: &PoSpaceTracker) -> ShareWork {
    let prev = tracker.best();
    ShareWork {
        prev,
        difficulty: tracker
            .verifier()
            .required_difficulty(tracker.chain(), prev.as_ref()),
    }
}

impl TrackerSink {
    /// Starts the service for `network` on the current tokio runtime.
    pub fn spawn(network: &'static ChiaNetwork) -> TrackerSink {
        let tracker = new_pospace_tracker(network);
        let (work_tx, work) = watch::channel(work_of(&tracker));
        let (requests, rx) = mpsc::channel(QUEUE);
        tokio::spawn(serve(tracker, rx, work_tx));
        TrackerSink { requests, work }
    }

    /// Every share of the tracker's best chain, newest first.
    pub async fn best_chain(&self) -> Vec<PoSpaceShare> {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Shares(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

async fn serve(
    mut tracker: PoSpaceTracker,
    mut rx: mpsc::Receiver<Request>,
    work: watch::Sender<ShareWork>,
) {
    let mut known: VecDeque<SignagePoint> = VecDeque::new();
    while let Some(request) = rx.recv().await {
        match request {
            Request::Submit(share, reply) => {
                let hash = share.hash();
                let result = match tracker.insert(share) {
                    Ok(changes) => match changes.invalid.into_iter().find(|r| r.hash == hash) {
                        Some(rejected) => Err(SinkError::Invalid(rejected.error)),
                        None => Ok(hash),
                    },
                    Err(e) => Err(SinkError::Insert(e)),
                };
                let _ = reply.send(result);
            }
            Request::SignagePoint(sp) => {
                let points = tracker.verifier_mut().signage_points_mut();
                points.insert(sp);
                if let Some(old) = remember(&mut known, sp) {
                    points.remove(&old.challenge_hash, &old.sp_hash);
                }
                if !tracker.pending().is_empty() {
                    tracker.retry_pending();
                }
            }
            Request::Shares(reply) => {
                let shares = match tracker.best() {
                    Some(best) => tracker
                        .chain()
                        .ancestors(&best)
                        .map(|s| PoSpaceShare::clone(s))
                        .collect(),
                    None => Vec::new(),
                };
                let _ = reply.send(shares);
            }
        }
        work.send_if_modified(|w| {
            let new = work_of(&tracker);
            let changed = *w != new;
            *w = new;
            changed
        });
    }
}

impl PoSpaceShareSink for TrackerSink {
    fn work(&self) -> ShareWork {
        *self.work.borrow()
    }

    fn signage_point(&self, sp: SignagePoint) {
        if self.requests.try_send(Request::SignagePoint(sp)).is_err() {
            tracing::warn!("share service busy: a signage point was not recorded");
        }
    }

    fn submit(&self, share: PoSpaceShare) -> BoxFuture<'static, Result<ShareHash, SinkError>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.requests.try_send(Request::Submit(share, tx));
        Box::pin(async move {
            match sent {
                Ok(()) => rx.await.unwrap_or(Err(SinkError::Stopped)),
                Err(mpsc::error::TrySendError::Full(_)) => Err(SinkError::Busy),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(SinkError::Stopped),
            }
        })
    }
}
