//! The peer-height policy: what each peer's chain is known to be, and whether the node is too far
//! behind its peers to hand out work. A peer's height counts only as far as shares this node
//! holds back it, so a peer cannot stop the node's work by lying about its chain.

use sharechain::tracker::TrackedShare;
use sharechain::ShareHash;

use super::kind::{KindTracker, ShareKind};
use crate::p2p::ChainStatus;

/// A node this many shares below its best peer refuses to hand out share-chain work.
pub const BEHIND_THRESHOLD: u32 = 10;

/// A peer's share counts toward its height only with at least this fraction of the work of the
/// node's best share: a share at the easiest target costs next to nothing to make.
const BACKING_WORK_DIVISOR: u128 = 4;

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

impl SyncStatus {
    /// The verdict for a node at `height` whose best peer is backed at `peer_height`.
    pub(super) fn new(height: u32, peer_height: u32) -> Self {
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
}

/// What a peer's chain is known to be.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PeerChain {
    /// Its best share and height as it last said.
    pub(super) claim: ChainStatus,
    /// The highest share (height, hash) it gossiped that this node took in.
    pub(super) sent: Option<(u32, ShareHash)>,
}

impl PeerChain {
    /// The peer's height as far as shares this node holds back it: its claimed best once held,
    /// or the highest share it gossiped, at the height that share carries, if its proof of work
    /// is near the node's own share difficulty. A bare claim counts for nothing.
    pub(super) fn backed_height<K: ShareKind>(&self, t: &KindTracker<K>) -> u32 {
        let floor = t
            .best()
            .and_then(|b| t.chain().get(&b))
            .map_or(0, |s| s.work() / BACKING_WORK_DIVISOR);
        [self.claim.best, self.sent.map(|(_, h)| h)]
            .into_iter()
            .flatten()
            .filter(|h| t.chain().get(h).is_some_and(|s| s.work() >= floor))
            .map(|h| K::height(t.chain(), &h))
            .max()
            .unwrap_or(0)
    }

    /// A later claim of a lower height is ignored.
    pub(super) fn note_status(&mut self, status: ChainStatus) {
        if status.best.is_some() && status.height >= self.claim.height {
            self.claim = status;
        }
    }

    /// A share the peer gossiped and this node took in: the peer has at least that chain.
    pub(super) fn note_sent(&mut self, height: u32, hash: ShareHash) {
        if self.sent.is_none_or(|(h, _)| height > h) {
            self.sent = Some((height, hash));
        }
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::Hash;
    use bitcoin::BlockHash;
    use sharechain::build::generate;
    use sharechain::target::scale;
    use sharechain::testkit::{easy_params, mine, p2wpkh, request};
    use sharechain::{new_tracker, CheckedShare, NetworkParams, Tracker};

    use super::*;
    use crate::shares::Bitcoin;

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
        assert_eq!(peer.backed_height::<Bitcoin>(&t), 0);

        assert_eq!(
            (easy_tip.work() * 16, fair_tip.work() * 2),
            (best_work(&t), best_work(&t))
        );
        // Held, but with a sixteenth of the best share's work: still nothing.
        t.insert(easy_tip.clone()).expect("insert an orphan");
        peer.claim = status(&easy_tip);
        assert_eq!(peer.backed_height::<Bitcoin>(&t), 0);
        peer.sent = Some((9, easy_tip.hash()));
        assert_eq!(peer.backed_height::<Bitcoin>(&t), 0);

        // Held, with half the best share's work: the height it carries counts.
        t.insert(fair_tip.clone()).expect("insert an orphan");
        peer.claim = status(&fair_tip);
        assert_eq!(peer.backed_height::<Bitcoin>(&t), 9);
        peer = PeerChain {
            claim: ChainStatus::default(),
            sent: Some((9, fair_tip.hash())),
        };
        assert_eq!(peer.backed_height::<Bitcoin>(&t), 9);
    }
}
