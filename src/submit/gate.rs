//! Found blocks, once per parent.
//!
//! On an easy chain (regtest, testnet4 under its 20-minute rule) nearly every pseudo-share is
//! a block candidate: a CPU miner finds thousands a second, all siblings on the same parent.
//! Only one of them can extend the chain, so sending them all only buries bitcoind's RPC work
//! queue (16 threads, 64 queued requests by default) under blocks it will store as side
//! branches, while the one that matters waits in the same queue.
//!
//! The gate keeps, per parent block, at most one block being judged by bitcoind:
//! - the first block found on a parent goes out at once (RPC and P2P, and to peers when it is
//!   our own);
//! - later candidates on that parent are held (a few of them) until bitcoind judges the first:
//!   accepted, or the tip moved past the parent, and they are dropped (counted, never sent);
//!   rejected (or never judged), and the next one held is sent;
//! - blocks that peers gossip pass through the same gate.
//!
//! So per accepted block bitcoind sees one `submitblock` call (plus retries with back-off when it
//! answers 503 or times out), whatever the miners' rate; at most [`MAX_IN_FLIGHT`] deliveries run
//! at once, and nothing that could still extend the chain is thrown away.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Block, BlockHash};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::logging::RateLimited;

/// Deliveries to bitcoind under way at once (each is one block and its retries).
pub const MAX_IN_FLIGHT: usize = 2;
/// Candidates held per parent while the first is judged; more are dropped (they are siblings of
/// the held ones, as good as they are).
const HELD_PER_PARENT: usize = 8;
/// Block hashes remembered per parent, to know a peer's copy of a block already under way.
const SEEN_PER_PARENT: usize = 1024;
/// Parents the tip moved past, remembered so late candidates on them are dropped.
const RETIRED: usize = 256;
/// Parents with a block under way or held; past this, candidates on new parents are dropped.
const MAX_PARENTS: usize = 64;

/// Where a block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Found by this node's miners.
    Local,
    /// Gossiped by a share-network peer.
    Peer,
}

/// What bitcoind made of a delivered block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// On the chain (or already known to bitcoind).
    Accepted,
    /// Invalid.
    Rejected,
    /// No verdict: not delivered, or bitcoind did not say.
    Unknown,
}

/// Asks whether a delivery still matters (its parent is not behind the tip); retries stop when
/// it does not.
pub type StillUseful = Arc<dyn Fn() -> bool + Send + Sync>;

/// How a block reaches bitcoind (and peers). The node's is [`super::BlockSubmitter`] plus the
/// share network.
pub trait Deliver: Send + Sync + 'static {
    /// Sends `block`; resolves with bitcoind's verdict. Our own blocks also go to peers.
    fn deliver(
        &self,
        block: Block,
        origin: Origin,
        still_useful: StillUseful,
    ) -> impl Future<Output = Verdict> + Send;
}

/// The gate's figures, for the status page and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GateCounts {
    /// Blocks our miners found (each submit meeting the block target).
    pub candidates: u64,
    /// Blocks peers gossiped to us.
    pub peer_blocks: u64,
    /// Blocks sent to bitcoind (ours and peers').
    pub sent: u64,
    /// Our blocks bitcoind accepted.
    pub accepted: u64,
    /// Peers' blocks bitcoind accepted from us.
    pub peer_accepted: u64,
    /// Blocks bitcoind rejected.
    pub rejected: u64,
    /// Blocks sent that got no verdict.
    pub unjudged: u64,
    /// Held back and dropped: a sibling was accepted, or more were held than needed.
    pub dropped_siblings: u64,
    /// Dropped: the tip had moved past their parent.
    pub dropped_stale: u64,
}

#[derive(Debug, Default)]
struct Counters {
    candidates: AtomicU64,
    peer_blocks: AtomicU64,
    sent: AtomicU64,
    accepted: AtomicU64,
    peer_accepted: AtomicU64,
    rejected: AtomicU64,
    unjudged: AtomicU64,
    dropped_siblings: AtomicU64,
    dropped_stale: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

#[derive(Debug, Default)]
struct Parent {
    /// A block on this parent is with bitcoind now.
    judging: bool,
    /// bitcoind accepted a block on this parent.
    won: bool,
    held: VecDeque<(Block, Origin)>,
    /// Hashes seen on this parent (a peer's copy of a block we hold is no new candidate).
    seen: HashSet<BlockHash>,
}

#[derive(Debug, Default)]
struct State {
    tip: Option<BlockHash>,
    retired: VecDeque<BlockHash>,
    retired_set: HashSet<BlockHash>,
    parents: HashMap<BlockHash, Parent>,
}

impl State {
    fn retire(&mut self, parent: BlockHash) {
        if self.retired_set.insert(parent) {
            self.retired.push_back(parent);
            while self.retired.len() > RETIRED {
                if let Some(old) = self.retired.pop_front() {
                    self.retired_set.remove(&old);
                }
            }
        }
    }
}

struct Inner<D> {
    deliver: D,
    state: Mutex<State>,
    counts: Counters,
    in_flight: Semaphore,
    dropped_log: RateLimited,
}

/// The gate; cheap to clone.
pub struct BlockGate<D> {
    inner: Arc<Inner<D>>,
}

impl<D> Clone for BlockGate<D> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<D> std::fmt::Debug for BlockGate<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockGate")
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl<D> BlockGate<D> {
    /// The figures so far.
    pub fn counts(&self) -> GateCounts {
        let c = &self.inner.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GateCounts {
            candidates: get(&c.candidates),
            peer_blocks: get(&c.peer_blocks),
            sent: get(&c.sent),
            accepted: get(&c.accepted),
            peer_accepted: get(&c.peer_accepted),
            rejected: get(&c.rejected),
            unjudged: get(&c.unjudged),
            dropped_siblings: get(&c.dropped_siblings),
            dropped_stale: get(&c.dropped_stale),
        }
    }
}

impl<D: Deliver> BlockGate<D> {
    /// A gate in front of `deliver`.
    pub fn new(deliver: D) -> Self {
        Self {
            inner: Arc::new(Inner {
                deliver,
                state: Mutex::new(State::default()),
                counts: Counters::default(),
                in_flight: Semaphore::new(MAX_IN_FLIGHT),
                dropped_log: RateLimited::new(Duration::from_secs(10)),
            }),
        }
    }

    /// The delivery behind the gate.
    pub fn delivery(&self) -> &D {
        &self.inner.deliver
    }

    /// A found or gossiped block: sent now, held, or dropped (see the module docs). Never waits.
    pub fn offer(&self, block: Block, origin: Origin) {
        let c = &self.inner.counts;
        match origin {
            Origin::Local => add(&c.candidates, 1),
            Origin::Peer => add(&c.peer_blocks, 1),
        }
        let parent = block.header.prev_blockhash;
        let hash = block.block_hash();
        let send = {
            let mut state = self.inner.state.lock();
            if state.retired_set.contains(&parent) {
                drop(state);
                self.dropped(true);
                return;
            }
            let known = state.parents.contains_key(&parent);
            if !known && state.parents.len() >= MAX_PARENTS {
                drop(state);
                self.dropped(false);
                return;
            }
            let p = state.parents.entry(parent).or_default();
            let new = p.seen.len() >= SEEN_PER_PARENT || p.seen.insert(hash);
            if !new && origin == Origin::Peer {
                // A block we already have under way, back from the share network.
                return;
            }
            if p.won || (p.judging && p.held.len() >= HELD_PER_PARENT) {
                drop(state);
                self.dropped(false);
                return;
            }
            if p.judging {
                p.held.push_back((block, origin));
                return;
            }
            p.judging = true;
            (block, origin)
        };
        let gate = self.clone();
        tokio::spawn(async move { gate.judge(send.0, send.1).await });
    }

    /// Whether one of our blocks on `parent` would be sent or held now. When not, it is counted
    /// as a candidate dropped, so the caller need not build it.
    pub fn wants_local(&self, parent: &BlockHash) -> bool {
        let stale = {
            let state = self.inner.state.lock();
            if state.retired_set.contains(parent) {
                Some(true)
            } else {
                match state.parents.get(parent) {
                    Some(p) if p.won || (p.judging && p.held.len() >= HELD_PER_PARENT) => {
                        Some(false)
                    }
                    None if state.parents.len() >= MAX_PARENTS => Some(false),
                    _ => None,
                }
            }
        };
        let Some(stale) = stale else {
            return true;
        };
        add(&self.inner.counts.candidates, 1);
        self.dropped(stale);
        false
    }

    /// Counts a block dropped on arrival (`stale`: its parent is behind the tip; else a
    /// sibling), and says so now and then.
    fn dropped(&self, stale: bool) {
        let c = &self.inner.counts;
        add(
            if stale {
                &c.dropped_stale
            } else {
                &c.dropped_siblings
            },
            1,
        );
        self.log_dropped();
    }

    /// bitcoind's tip moved to `tip`: candidates on every other parent are late.
    pub fn set_tip(&self, tip: BlockHash) {
        let mut dropped = 0;
        {
            let mut state = self.inner.state.lock();
            if state.tip == Some(tip) {
                return;
            }
            if let Some(old) = state.tip.replace(tip) {
                state.retire(old);
            }
            for (parent, p) in state.parents.iter_mut() {
                if *parent != tip {
                    dropped += p.held.len();
                    p.held.clear();
                }
            }
            state
                .parents
                .retain(|parent, p| *parent == tip || p.judging);
        }
        add(&self.inner.counts.dropped_stale, dropped);
    }

    fn log_dropped(&self) {
        crate::log_limited!(
            self.inner.dropped_log,
            info,
            counts = ?self.counts(),
            "holding back found blocks whose parent already has a block with bitcoind (or is behind the tip)"
        );
    }

    /// Whether blocks on `parent` can still extend the chain.
    fn useful(&self, parent: BlockHash) -> bool {
        let state = self.inner.state.lock();
        !state.retired_set.contains(&parent) && state.parents.get(&parent).is_none_or(|p| !p.won)
    }

    /// Delivers `block`, then the held ones on its parent one by one while bitcoind refuses them.
    async fn judge(self, mut block: Block, mut origin: Origin) {
        let parent = block.header.prev_blockhash;
        loop {
            let verdict = {
                let Ok(_permit) = self.inner.in_flight.acquire().await else {
                    return;
                };
                add(&self.inner.counts.sent, 1);
                let gate = self.clone();
                let still_useful: StillUseful = Arc::new(move || gate.useful(parent));
                self.inner
                    .deliver
                    .deliver(block, origin, still_useful)
                    .await
            };
            let c = &self.inner.counts;
            match (verdict, origin) {
                (Verdict::Accepted, Origin::Local) => add(&c.accepted, 1),
                (Verdict::Accepted, Origin::Peer) => add(&c.peer_accepted, 1),
                (Verdict::Rejected, _) => add(&c.rejected, 1),
                (Verdict::Unknown, _) => add(&c.unjudged, 1),
            }
            let next = {
                let mut state = self.inner.state.lock();
                let retired = state.retired_set.contains(&parent);
                let Some(p) = state.parents.get_mut(&parent) else {
                    return;
                };
                if verdict == Verdict::Accepted || retired {
                    p.won |= verdict == Verdict::Accepted;
                    let dropped = p.held.len();
                    p.held.clear();
                    p.judging = false;
                    if retired {
                        state.parents.remove(&parent);
                        add(&c.dropped_stale, dropped);
                    } else {
                        add(&c.dropped_siblings, dropped);
                    }
                    None
                } else {
                    let next = p.held.pop_front();
                    p.judging = next.is_some();
                    next
                }
            };
            match next {
                Some((b, o)) => {
                    block = b;
                    origin = o;
                }
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use tokio::sync::{mpsc, oneshot};

    /// A delivery the test answers by hand.
    struct Manual(mpsc::Sender<Asked>);

    /// A block handed to the delivery, and where its verdict goes.
    type Asked = (Block, Origin, oneshot::Sender<Verdict>);

    impl Deliver for Manual {
        fn deliver(
            &self,
            block: Block,
            origin: Origin,
            _: StillUseful,
        ) -> impl Future<Output = Verdict> + Send {
            let tx = self.0.clone();
            async move {
                let (reply, verdict) = oneshot::channel();
                if tx.send((block, origin, reply)).await.is_err() {
                    return Verdict::Unknown;
                }
                verdict.await.unwrap_or(Verdict::Unknown)
            }
        }
    }

    fn block(parent: u8, nonce: u32) -> Block {
        let mut b = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        b.header.prev_blockhash = BlockHash::from_byte_array([parent; 32]);
        b.header.nonce = nonce;
        b
    }

    fn gate() -> (BlockGate<Manual>, mpsc::Receiver<Asked>) {
        let (tx, rx) = mpsc::channel(16);
        (BlockGate::new(Manual(tx)), rx)
    }

    async fn next(rx: &mut mpsc::Receiver<Asked>) -> Asked {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a delivery")
            .expect("open")
    }

    /// Lets spawned deliveries run until they wait on the test.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn siblings_wait_for_the_first_and_are_dropped_when_it_is_accepted() {
        let (gate, mut rx) = gate();
        gate.set_tip(BlockHash::from_byte_array([1; 32]));
        for nonce in 0..100 {
            gate.offer(block(1, nonce), Origin::Local);
        }
        let (first, _, reply) = next(&mut rx).await;
        assert_eq!(first.header.nonce, 0, "the first found goes first");
        settle().await;
        assert!(rx.try_recv().is_err(), "nothing else while it is judged");
        reply.send(Verdict::Accepted).expect("waiting");
        settle().await;
        gate.offer(block(1, 1000), Origin::Local);
        settle().await;
        assert!(
            rx.try_recv().is_err(),
            "siblings of an accepted block are not sent"
        );
        let c = gate.counts();
        assert_eq!((c.candidates, c.sent, c.accepted), (101, 1, 1));
        assert_eq!(c.dropped_siblings, 100);
        assert!(!gate.wants_local(&BlockHash::from_byte_array([1; 32])));
        assert!(gate.wants_local(&BlockHash::from_byte_array([9; 32])));
        assert_eq!(
            gate.counts().candidates,
            102,
            "a candidate not built still counts"
        );
    }

    #[tokio::test]
    async fn a_rejected_block_makes_way_for_the_next_held_one() {
        let (gate, mut rx) = gate();
        for nonce in 0..3 {
            gate.offer(block(1, nonce), Origin::Local);
        }
        let (_, _, reply) = next(&mut rx).await;
        reply.send(Verdict::Rejected).expect("waiting");
        let (second, _, reply) = next(&mut rx).await;
        assert_eq!(second.header.nonce, 1);
        reply.send(Verdict::Unknown).expect("waiting");
        let (third, _, reply) = next(&mut rx).await;
        assert_eq!(third.header.nonce, 2);
        reply.send(Verdict::Accepted).expect("waiting");
        settle().await;
        let c = gate.counts();
        assert_eq!((c.sent, c.rejected, c.unjudged, c.accepted), (3, 1, 1, 1));
    }

    #[tokio::test]
    async fn a_new_tip_drops_what_is_held_on_older_parents() {
        let (gate, mut rx) = gate();
        gate.set_tip(BlockHash::from_byte_array([1; 32]));
        gate.offer(block(1, 0), Origin::Local);
        gate.offer(block(1, 1), Origin::Local);
        let (_, _, reply) = next(&mut rx).await;
        gate.set_tip(BlockHash::from_byte_array([2; 32]));
        assert_eq!(gate.counts().dropped_stale, 1, "the held sibling");
        reply.send(Verdict::Rejected).expect("waiting");
        settle().await;
        assert!(rx.try_recv().is_err());
        gate.offer(block(1, 2), Origin::Local);
        assert_eq!(
            gate.counts().dropped_stale,
            2,
            "late candidates on the old tip"
        );
        // Blocks on the new tip, and on parents the gate never heard of, go out.
        gate.offer(block(2, 0), Origin::Local);
        gate.offer(block(3, 0), Origin::Peer);
        let mut parents = vec![
            next(&mut rx).await.0.header.prev_blockhash,
            next(&mut rx).await.0.header.prev_blockhash,
        ];
        parents.sort();
        assert_eq!(
            parents,
            [
                BlockHash::from_byte_array([2; 32]),
                BlockHash::from_byte_array([3; 32])
            ]
        );
    }

    #[tokio::test]
    async fn peers_blocks_pass_the_same_gate_and_a_copy_is_not_a_candidate() {
        let (gate, mut rx) = gate();
        let ours = block(1, 0);
        gate.offer(ours.clone(), Origin::Local);
        gate.offer(ours, Origin::Peer);
        gate.offer(block(1, 1), Origin::Peer);
        let (_, origin, reply) = next(&mut rx).await;
        assert_eq!(origin, Origin::Local);
        reply.send(Verdict::Accepted).expect("waiting");
        settle().await;
        assert!(rx.try_recv().is_err());
        let c = gate.counts();
        assert_eq!((c.peer_blocks, c.dropped_siblings, c.sent), (2, 1, 1));
    }

    #[tokio::test]
    async fn at_most_a_few_deliveries_at_once_and_few_held() {
        let (gate, mut rx) = gate();
        for parent in 0..10u8 {
            for nonce in 0..20 {
                gate.offer(block(parent, nonce), Origin::Local);
            }
        }
        settle().await;
        let mut replies = Vec::new();
        while let Ok(d) = rx.try_recv() {
            replies.push(d);
        }
        assert_eq!(replies.len(), MAX_IN_FLIGHT);
        let c = gate.counts();
        assert_eq!(
            c.dropped_siblings,
            10 * (20 - 1 - HELD_PER_PARENT as u64),
            "held per parent is bounded"
        );
    }
}
