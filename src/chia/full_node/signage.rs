//! The signage points this node's chia full node knows, as an oracle for peers' PoSpace shares
//! ([`SignageOracle`], the share service's [`ShareContext`] when the node runs beside a full
//! node).
//!
//! It is fed two ways: every `new_signage_point` the link receives (a bounded map of recent
//! `challenge_chain_sp` hashes → challenge, index, peak height, time received, reverted?), and,
//! for a share on a signage point the link never saw (it was down, or the point came before it
//! connected), the full node's RPC `get_recent_signage_point_or_eos`, asked in the background:
//! its answer says whether the full node knows the point, when it received it and whether it
//! was reverted.
//!
//! Reverts: a later signage point for the same sub-slot and index replacing an earlier one, or
//! the RPC answering `reverted: true`, marks the earlier one reverted. The farmer endpoint then
//! makes no more shares from new proofs on it (the link tells it, [`SourceEvent::Reverted`]). A
//! peer's share on a reverted signage point is still taken: the point was on the chain when the
//! share was made, and shares already in the share chain stay valid.
//!
//! [`SourceEvent::Reverted`]: crate::chia::farmer::source::SourceEvent::Reverted

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use sharechain::pospace_share::{PoSpaceShare, PoSpaceVerifier, SignagePoint};
use tokio::sync::mpsc;

use super::rpc::{RecentSignagePoint, RpcClient};
use crate::chia::protocol as p;
use crate::shares::{ContextVerdict, PoSpace, ShareContext};

/// Signage points remembered (64 a sub-slot: the last eight sub-slots, about 80 minutes on
/// mainnet).
pub const RECENT: usize = 512;
/// How long a peer's share may wait for its signage point by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// RPC look-ups queued at most.
const LOOKUP_QUEUE: usize = 64;
/// A signage point the full node did not know is asked about again after this long.
const ASK_AGAIN: Duration = Duration::from_secs(3);
/// Signage points given to the share verifier by [`SignageOracle`] itself (learnt by RPC, or
/// no longer among the farmer endpoint's), kept there at most.
const ADMITTED: usize = 256;

/// A signage point the full node is known to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownPoint {
    /// The sub-slot challenge.
    pub challenge_hash: [u8; 32],
    /// Index in the sub-slot (unknown for a point learnt by RPC).
    pub index: Option<u8>,
    /// The full node's peak height when it was sent (unknown for a point learnt by RPC).
    pub peak_height: Option<u32>,
    /// Unix seconds it was received (by the link, or by the full node for a point learnt by
    /// RPC).
    pub received: u64,
    /// No longer on the full node's chain.
    pub reverted: bool,
    /// Learnt by asking the RPC rather than from the link.
    pub from_rpc: bool,
}

/// What the oracle has done, for `/chia/full_node`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OracleCounts {
    /// Signage points known now.
    pub known: usize,
    /// Received from the link.
    pub from_link: u64,
    /// Confirmed by the RPC.
    pub confirmed_by_rpc: u64,
    /// RPC look-ups made.
    pub lookups: u64,
    /// RPC look-ups of a signage point the full node did not know.
    pub lookup_misses: u64,
    /// Signage points found reverted.
    pub reverted: u64,
    /// Seconds a peer's share may wait for its signage point.
    pub grace_secs: u64,
}

#[derive(Default)]
struct Recent {
    points: HashMap<[u8; 32], KnownPoint>,
    order: VecDeque<[u8; 32]>,
    /// (challenge, index) → the signage point there now.
    slots: HashMap<([u8; 32], u8), [u8; 32]>,
    /// Look-ups asked, and when (so one unknown point is not asked about on every check).
    asked: HashMap<[u8; 32], Instant>,
    /// Signage points this oracle put into the share verifier, oldest first.
    admitted: VecDeque<SignagePoint>,
    counts: OracleCounts,
}

impl Recent {
    fn insert(&mut self, sp_hash: [u8; 32], point: KnownPoint) {
        if self.points.insert(sp_hash, point).is_none() {
            self.order.push_back(sp_hash);
        }
        while self.order.len() > RECENT {
            if let Some(old) = self.order.pop_front() {
                if let Some(p) = self.points.remove(&old) {
                    if let Some(i) = p.index {
                        if self.slots.get(&(p.challenge_hash, i)) == Some(&old) {
                            self.slots.remove(&(p.challenge_hash, i));
                        }
                    }
                }
            }
        }
        self.asked.remove(&sp_hash);
        self.counts.known = self.points.len();
    }
}

/// The signage points this node's chia full node knows: see the module documentation.
pub struct SignageOracle {
    recent: Mutex<Recent>,
    lookups: mpsc::Sender<([u8; 32], bool)>,
    grace: Duration,
}

impl std::fmt::Debug for SignageOracle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignageOracle")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// The queue of RPC look-ups a [`SignageOracle`] asks for: `(hash, end of sub-slot?)`.
pub type Lookups = mpsc::Receiver<([u8; 32], bool)>;

impl SignageOracle {
    /// An oracle knowing nothing yet, letting shares wait `grace` for their signage point; the
    /// look-ups it wants go to the returned queue ([`run_lookups`] answers them).
    pub fn new(grace: Duration) -> (Arc<SignageOracle>, Lookups) {
        let (lookups, rx) = mpsc::channel(LOOKUP_QUEUE);
        let recent = Recent {
            counts: OracleCounts {
                grace_secs: grace.as_secs(),
                ..OracleCounts::default()
            },
            ..Recent::default()
        };
        let oracle = SignageOracle {
            recent: Mutex::new(recent),
            lookups,
            grace,
        };
        (Arc::new(oracle), rx)
    }

    /// A signage point from the link. Returns the signage point it replaces at the same
    /// sub-slot and index (now reverted), if any.
    pub fn record(&self, m: &p::NewSignagePoint) -> Option<[u8; 32]> {
        self.record_point(
            m.challenge_hash.to_bytes(),
            m.challenge_chain_sp.to_bytes(),
            m.signage_point_index,
            m.peak_height,
        )
    }

    /// [`Self::record`] from the point's parts.
    pub fn record_point(
        &self,
        challenge_hash: [u8; 32],
        sp_hash: [u8; 32],
        index: u8,
        peak_height: u32,
    ) -> Option<[u8; 32]> {
        let mut r = self.recent.lock();
        r.counts.from_link += 1;
        r.insert(
            sp_hash,
            KnownPoint {
                challenge_hash,
                index: Some(index),
                peak_height: Some(peak_height),
                received: crate::chia::farmer::now_secs(),
                reverted: false,
                from_rpc: false,
            },
        );
        let replaced = r.slots.insert((challenge_hash, index), sp_hash)?;
        if replaced == sp_hash {
            return None;
        }
        let old = r.points.get_mut(&replaced)?;
        if old.reverted {
            return None;
        }
        old.reverted = true;
        r.counts.reverted += 1;
        drop(r);
        tracing::info!(
            sp = %hex::encode(replaced),
            by = %hex::encode(sp_hash),
            index,
            "signage point reverted: the chia full node sent another for the same sub-slot and \
             index; no new shares on it (shares on it already taken stay valid)"
        );
        Some(replaced)
    }

    /// What the RPC said about `hash` (`None`: the full node does not have it). Returns true
    /// when a point known from the link turned out reverted.
    pub fn confirm(
        &self,
        hash: [u8; 32],
        end_of_slot: bool,
        answer: Option<RecentSignagePoint>,
    ) -> bool {
        let mut r = self.recent.lock();
        r.counts.lookups += 1;
        let Some(answer) = answer else {
            r.counts.lookup_misses += 1;
            return false;
        };
        if let Some(known) = r.points.get_mut(&hash) {
            if answer.reverted && !known.reverted {
                known.reverted = true;
                r.counts.reverted += 1;
                tracing::info!(sp = %hex::encode(hash), "signage point reverted, says the chia full node's RPC");
                return true;
            }
            return false;
        }
        // An end of sub-slot's hash is its new sub-slot's challenge.
        let challenge_hash = match (answer.cc_challenge, end_of_slot) {
            (Some(c), _) => c,
            (None, true) => hash,
            (None, false) => return false,
        };
        r.counts.confirmed_by_rpc += 1;
        r.insert(
            hash,
            KnownPoint {
                challenge_hash,
                index: end_of_slot.then_some(0),
                peak_height: None,
                received: answer.time_received.max(0.0) as u64,
                reverted: answer.reverted,
                from_rpc: true,
            },
        );
        tracing::debug!(sp = %hex::encode(hash), reverted = answer.reverted, "signage point confirmed by the chia full node's RPC");
        false
    }

    /// The signage point with this hash, if known.
    pub fn get(&self, sp_hash: &[u8; 32]) -> Option<KnownPoint> {
        self.recent.lock().points.get(sp_hash).copied()
    }

    /// Whether a share on (`challenge_hash`, `sp_hash`, `index`) answers a signage point the
    /// full node has. An unknown one is asked about (in the background).
    pub fn check_point(
        &self,
        challenge_hash: &[u8; 32],
        sp_hash: &[u8; 32],
        index: u8,
    ) -> ContextVerdict {
        let mut r = self.recent.lock();
        if let Some(known) = r.points.get(sp_hash) {
            if known.challenge_hash != *challenge_hash {
                return ContextVerdict::Invalid(format!(
                    "signage point of another sub-slot: {} is in sub-slot {}, the share says {}",
                    hex::encode(sp_hash),
                    hex::encode(known.challenge_hash),
                    hex::encode(challenge_hash)
                ));
            }
            if known.index.is_some_and(|i| i != index) {
                return ContextVerdict::Invalid(format!(
                    "signage point index differs: {} is index {:?}, the share says {index}",
                    hex::encode(sp_hash),
                    known.index
                ));
            }
            return ContextVerdict::Known;
        }
        let due = r
            .asked
            .get(sp_hash)
            .is_none_or(|at| at.elapsed() >= ASK_AGAIN);
        if due {
            // Index 0 is an end of sub-slot: its hash is the new sub-slot's challenge.
            let end_of_slot = index == 0;
            if self.lookups.try_send((*sp_hash, end_of_slot)).is_ok() {
                if r.asked.len() >= RECENT {
                    r.asked.retain(|_, at| at.elapsed() < ASK_AGAIN);
                }
                r.asked.insert(*sp_hash, Instant::now());
            }
        }
        ContextVerdict::Unknown(format!(
            "signage point unknown to the chia full node: {}",
            hex::encode(sp_hash)
        ))
    }

    /// What it has done.
    pub fn counts(&self) -> OracleCounts {
        self.recent.lock().counts.clone()
    }

    /// The signage points known, oldest first.
    pub fn points(&self) -> Vec<([u8; 32], KnownPoint)> {
        let r = self.recent.lock();
        r.order
            .iter()
            .filter_map(|h| r.points.get(h).map(|p| (*h, *p)))
            .collect()
    }
}

impl ShareContext<PoSpace> for SignageOracle {
    fn check(&self, share: &PoSpaceShare) -> ContextVerdict {
        let c = share.content();
        self.check_point(&c.challenge_hash, &c.sp_hash, c.signage_point_index)
    }

    /// The verifier needs the signage point too: the farmer endpoint gave it the link's recent
    /// ones; a point learnt by RPC (or one the endpoint has already forgotten) is given here.
    fn admit(&self, share: &PoSpaceShare, verifier: &mut PoSpaceVerifier) {
        let c = share.content();
        if verifier
            .signage_points()
            .get(&c.challenge_hash, &c.sp_hash)
            .is_some()
        {
            return;
        }
        let Some(known) = self.get(&c.sp_hash) else {
            return;
        };
        let point = SignagePoint {
            challenge_hash: known.challenge_hash,
            sp_hash: c.sp_hash,
            index: known.index.unwrap_or(c.signage_point_index),
            peak_height: known.peak_height.unwrap_or(c.peak_height),
        };
        let points = verifier.signage_points_mut();
        points.insert(point);
        let mut r = self.recent.lock();
        r.admitted.push_back(point);
        while r.admitted.len() > ADMITTED {
            if let Some(old) = r.admitted.pop_front() {
                points.remove(&old.challenge_hash, &old.sp_hash);
            }
        }
    }

    fn grace(&self) -> Duration {
        self.grace
    }
}

/// Answers the oracle's look-ups with the full node's RPC until the queue closes; a signage
/// point found reverted is passed to `reverted`.
pub async fn run_lookups(
    oracle: Arc<SignageOracle>,
    rpc: RpcClient,
    mut lookups: Lookups,
    reverted: impl Fn([u8; 32]),
) {
    while let Some((hash, end_of_slot)) = lookups.recv().await {
        match rpc.recent_signage_point(&hash, end_of_slot).await {
            Ok(answer) => {
                if oracle.confirm(hash, end_of_slot, answer) {
                    reverted(hash);
                }
            }
            // The full node away (restarting): the share stays held and is asked about again.
            Err(e) => {
                tracing::debug!(sp = %hex::encode(hash), error = %e, "signage point look-up failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_unknown_and_reverted_points() {
        let (oracle, mut lookups) = SignageOracle::new(Duration::from_secs(60));
        let (ch, sp) = ([1; 32], [2; 32]);
        // Unknown: asked once (not again right away).
        assert!(matches!(
            oracle.check_point(&ch, &sp, 3),
            ContextVerdict::Unknown(_)
        ));
        assert!(matches!(
            oracle.check_point(&ch, &sp, 3),
            ContextVerdict::Unknown(_)
        ));
        assert_eq!(lookups.try_recv().unwrap(), (sp, false));
        assert!(lookups.try_recv().is_err());
        // The full node does not know it; then the link brings it.
        assert!(!oracle.confirm(sp, false, None));
        assert_eq!(oracle.record_point(ch, sp, 3, 10), None);
        assert_eq!(oracle.check_point(&ch, &sp, 3), ContextVerdict::Known);
        // Another sub-slot or index than the point's: refused.
        assert!(matches!(
            oracle.check_point(&[9; 32], &sp, 3),
            ContextVerdict::Invalid(_)
        ));
        assert!(matches!(
            oracle.check_point(&ch, &sp, 4),
            ContextVerdict::Invalid(_)
        ));
        // Another point at the same index replaces it: reverted, still known.
        assert_eq!(oracle.record_point(ch, [3; 32], 3, 11), Some(sp));
        assert!(oracle.get(&sp).unwrap().reverted);
        assert_eq!(oracle.check_point(&ch, &sp, 3), ContextVerdict::Known);
        // Learnt by RPC.
        let other = [4; 32];
        assert!(matches!(
            oracle.check_point(&ch, &other, 5),
            ContextVerdict::Unknown(_)
        ));
        let answer = RecentSignagePoint {
            cc_challenge: Some(ch),
            time_received: 5.0,
            reverted: false,
        };
        assert!(!oracle.confirm(other, false, Some(answer)));
        assert_eq!(oracle.check_point(&ch, &other, 5), ContextVerdict::Known);
        let counts = oracle.counts();
        assert_eq!(
            (counts.known, counts.confirmed_by_rpc, counts.reverted),
            (3, 1, 1)
        );
        assert_eq!(counts.lookup_misses, 1);
    }

    /// A peer's share through the real share service (no sockets: the network's side is
    /// recorded), with the oracle fed by hand.
    mod service {
        use libp2p::gossipsub::{MessageAcceptance, MessageId};
        use libp2p::PeerId;
        use sharechain::pospace_share::testkit::ProofBook;
        use sharechain::pospace_share::ChiaNetwork;

        use super::*;
        use crate::p2p::{Inbound, Offence, P2pHandle, Via};
        use crate::shares::{PoSpaceService, ShareKind, ShareNet};
        use crate::store::ShareStore;

        const PROOFS: &str =
            include_str!("../../../sharechain/tests/vectors/chia/pospace_share_proofs_k18.csv");

        #[derive(Debug, Clone, PartialEq, Eq)]
        enum Event {
            Published,
            Validated(MessageAcceptance),
            Penalised(PeerId, Offence),
        }

        #[derive(Debug, Clone, Default)]
        struct Recorder(Arc<Mutex<Vec<Event>>>);

        impl ShareNet for Recorder {
            fn publish_share(&self, _bytes: Vec<u8>) {
                self.0.lock().push(Event::Published);
            }
            fn validated(&self, _id: MessageId, _source: PeerId, acceptance: MessageAcceptance) {
                self.0.lock().push(Event::Validated(acceptance));
            }
            fn penalise(&self, peer: PeerId, offence: Offence) {
                self.0.lock().push(Event::Penalised(peer, offence));
            }
        }

        struct Setup {
            svc: PoSpaceService,
            oracle: Arc<SignageOracle>,
            rec: Recorder,
            peer: PeerId,
            share: PoSpaceShare,
            sp: SignagePoint,
            _lookups: Lookups,
            _dir: tempfile::TempDir,
        }

        /// A service checking against an oracle, and a peer's share on proof 0 of the book
        /// gossiped to it.
        async fn setup(grace: Duration) -> Setup {
            let net = &ChiaNetwork::REGTEST;
            let book = ProofBook::parse(PROOFS);
            let content = book.content(0, None, net.initial_difficulty, 1_700_000_000, [1; 32]);
            let share = book.share(&content, net);
            let dir = tempfile::tempdir().unwrap();
            let store = ShareStore::open(&dir.path().join("shares.redb")).unwrap();
            let (p2p, _commands) = P2pHandle::detached(64);
            let (inbound, rx) = mpsc::channel(16);
            let rec = Recorder::default();
            let svc = PoSpaceService::start_with_net(net, store, p2p, rx, Box::new(rec.clone()))
                .await
                .unwrap();
            let (oracle, lookups) = SignageOracle::new(grace);
            svc.set_context(oracle.clone());
            let peer = PeerId::random();
            inbound
                .send(Inbound::Shares {
                    from: peer,
                    shares: vec![PoSpace::encode(&share)],
                    via: Via::Gossip(MessageId::from(vec![1])),
                })
                .await
                .unwrap();
            // Held: not in the chain, not forwarded.
            let deadline = Instant::now() + Duration::from_secs(5);
            while svc.context_counts().held == 0 {
                assert!(Instant::now() < deadline, "share not held");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(!{
                let h = share.hash();
                svc.query(move |t| t.chain().contains(&h)).await.unwrap()
            });
            Setup {
                svc,
                oracle,
                rec,
                peer,
                sp: book.signage_point(0),
                share,
                _lookups: lookups,
                _dir: dir,
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_share_whose_signage_point_becomes_known_within_the_grace_is_taken() {
            let s = setup(Duration::from_secs(30)).await;
            assert_eq!(
                s.rec.0.lock().as_slice(),
                [Event::Validated(MessageAcceptance::Ignore)]
            );
            // The link brings the signage point (the verifier does not know it: the oracle
            // gives it).
            s.oracle.record_point(
                s.sp.challenge_hash,
                s.sp.sp_hash,
                s.sp.index,
                s.sp.peak_height,
            );
            let mut best = s.svc.subscribe_best();
            tokio::time::timeout(Duration::from_secs(10), best.wait_for(|b| b.is_some()))
                .await
                .expect("taken in time")
                .unwrap();
            assert_eq!(s.svc.best_share_hash(), Some(s.share.hash()));
            let h = s.share.hash();
            assert!(s
                .svc
                .query(move |t| t.chain().is_verified(&h))
                .await
                .unwrap());
            let counts = s.svc.context_counts();
            assert_eq!((counts.held, counts.released, counts.expired), (0, 1, 0));
            let events = s.rec.0.lock().clone();
            assert!(
                events.contains(&Event::Published),
                "gossiped on: {events:?}"
            );
            assert!(
                !events.iter().any(|e| matches!(e, Event::Penalised(..))),
                "{events:?}"
            );
            s.svc.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_share_on_a_signage_point_the_rpc_confirms_is_taken() {
            let s = setup(Duration::from_secs(30)).await;
            // What `run_lookups` does with the full node's answer (the link never saw it).
            let answer = RecentSignagePoint {
                cc_challenge: Some(s.sp.challenge_hash),
                time_received: 1.0,
                reverted: false,
            };
            assert!(!s.oracle.confirm(s.sp.sp_hash, false, Some(answer)));
            let mut best = s.svc.subscribe_best();
            tokio::time::timeout(Duration::from_secs(10), best.wait_for(|b| b.is_some()))
                .await
                .expect("taken in time")
                .unwrap();
            let h = s.share.hash();
            assert!(s
                .svc
                .query(move |t| t.chain().is_verified(&h))
                .await
                .unwrap());
            assert_eq!(s.oracle.counts().confirmed_by_rpc, 1);
            s.svc.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_share_whose_signage_point_stays_unknown_is_dropped_and_its_sender_penalised() {
            let s = setup(Duration::from_secs(1)).await;
            let deadline = Instant::now() + Duration::from_secs(10);
            while s.svc.context_counts().expired == 0 {
                assert!(Instant::now() < deadline, "not dropped");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let counts = s.svc.context_counts();
            assert_eq!((counts.held, counts.released), (0, 0));
            assert_eq!(
                counts
                    .reasons
                    .get("signage point unknown to the chia full node"),
                Some(&1),
                "{counts:?}"
            );
            assert_eq!(s.svc.snapshot().invalid, 1);
            let events = s.rec.0.lock().clone();
            assert!(
                events.iter().any(
                    |e| matches!(e, Event::Penalised(p, Offence::InvalidShare(_)) if *p == s.peer)
                ),
                "{events:?}"
            );
            assert!(!events.contains(&Event::Published), "{events:?}");
            // A late signage point does not bring it back.
            s.oracle.record_point(
                s.sp.challenge_hash,
                s.sp.sp_hash,
                s.sp.index,
                s.sp.peak_height,
            );
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(!{
                let h = s.share.hash();
                s.svc.query(move |t| t.chain().contains(&h)).await.unwrap()
            });
            s.svc.shutdown().await;
        }
    }

    #[test]
    fn the_map_is_bounded() {
        let (oracle, _lookups) = SignageOracle::new(DEFAULT_GRACE);
        for i in 0..(RECENT as u32 + 10) {
            let mut sp = [0u8; 32];
            sp[..4].copy_from_slice(&i.to_le_bytes());
            oracle.record_point([1; 32], sp, (i % 64) as u8, i);
        }
        assert_eq!(oracle.counts().known, RECENT);
        assert!(oracle.get(&[0; 32]).is_none());
    }
}
