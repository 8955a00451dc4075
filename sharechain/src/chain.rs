//! The share graph: nodes by hash, parent/child links, local heights, cumulative work and skip
//! pointers for `O(log n)` ancestor look-ups. Owned and mutated by [`crate::tracker`]; read by
//! verifiers through [`Chain`].

use std::sync::Arc;

use crate::share::{ShareHash, ShareHashMap};

/// What the tracker needs to know about a share of any kind (Bitcoin header shares, Chia
/// proof-of-space shares, …).
pub trait TrackedShare {
    /// The external chain tip a share builds on (a Bitcoin block hash for header shares).
    type Tip: Clone + Eq + std::fmt::Debug;
    /// The share's identity.
    fn hash(&self) -> ShareHash;
    /// The share it builds on (`None` for the first share of a chain).
    fn prev_hash(&self) -> Option<ShareHash>;
    /// Work this share proves (average attempts at its target).
    fn work(&self) -> u128;
    /// True when the share builds on `tip`, or is itself the block that made `tip`.
    fn builds_on(&self, tip: &Self::Tip) -> bool;
    /// A second per-share quantity summed along the chain (prefix sums, `O(log n)` range sums);
    /// Bitcoin shares use the work of their `max_bits` for the retarget.
    fn aux_work(&self) -> u128 {
        0
    }
}

#[derive(Debug)]
pub(crate) struct Node<S> {
    pub(crate) share: Arc<S>,
    pub(crate) children: Vec<ShareHash>,
    /// Local height: 1 for a share whose parent is not in the tracker.
    pub(crate) height: u32,
    /// Work of this share and all its ancestors in the tracker.
    pub(crate) cum_work: u128,
    /// [`TrackedShare::aux_work`] of this share and all its ancestors in the tracker.
    pub(crate) cum_aux: u128,
    /// The chain below reaches the first share of the share chain (no missing history).
    pub(crate) rooted: bool,
    /// Identifies the connected tree the node belongs to.
    pub(crate) tree: u64,
    pub(crate) skip: Option<ShareHash>,
    pub(crate) verified: bool,
    /// Arrival order: earlier shares win ties.
    pub(crate) seen: u64,
}

/// Read-only view of the share graph.
#[derive(Debug)]
pub struct Chain<S> {
    pub(crate) nodes: ShareHashMap<Node<S>>,
}

impl<S> Default for Chain<S> {
    fn default() -> Self {
        Chain {
            nodes: ShareHashMap::default(),
        }
    }
}

/// Height of the skip target of a node at `height` (Bitcoin Core's `GetSkipHeight`).
pub(crate) fn skip_height(height: u32) -> u32 {
    fn invert_lowest_one(n: u32) -> u32 {
        n & n.wrapping_sub(1)
    }
    if height < 2 {
        return 0;
    }
    if height & 1 == 1 {
        invert_lowest_one(invert_lowest_one(height - 1)) + 1
    } else {
        invert_lowest_one(height)
    }
}

impl<S: TrackedShare> Chain<S> {
    /// Number of shares held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when no share is held.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// True when the share is held.
    pub fn contains(&self, hash: &ShareHash) -> bool {
        self.nodes.contains_key(hash)
    }

    /// The share with this hash.
    pub fn get(&self, hash: &ShareHash) -> Option<&Arc<S>> {
        self.nodes.get(hash).map(|n| &n.share)
    }

    /// The parent of a held share, if it is held too.
    pub fn parent(&self, hash: &ShareHash) -> Option<ShareHash> {
        let prev = self.nodes.get(hash)?.share.prev_hash()?;
        self.nodes.contains_key(&prev).then_some(prev)
    }

    /// Local height (number of held shares from this one down to its tail).
    pub fn height(&self, hash: &ShareHash) -> Option<u32> {
        self.nodes.get(hash).map(|n| n.height)
    }

    /// Cumulative work of the share and its held ancestors.
    pub fn cumulative_work(&self, hash: &ShareHash) -> Option<u128> {
        self.nodes.get(hash).map(|n| n.cum_work)
    }

    /// True when the share has been verified.
    pub fn is_verified(&self, hash: &ShareHash) -> bool {
        self.nodes.get(hash).is_some_and(|n| n.verified)
    }

    /// The children of a held share.
    pub fn children(&self, hash: &ShareHash) -> &[ShareHash] {
        self.nodes
            .get(hash)
            .map(|n| n.children.as_slice())
            .unwrap_or(&[])
    }

    /// The ancestor `n` steps below `hash` (`n = 0` is the share itself), if held.
    pub fn nth_ancestor(&self, hash: &ShareHash, n: u32) -> Option<ShareHash> {
        let mut node = self.nodes.get(hash)?;
        let target = node.height.checked_sub(n)?;
        let mut cur = *hash;
        let mut height = node.height;
        // One look-up per step: the node stepped to is the one examined next.
        while height > target {
            let h_skip = skip_height(height);
            let h_skip_prev = skip_height(height - 1);
            let want_skip = h_skip == target
                || (h_skip > target && !(h_skip_prev + 2 < h_skip && h_skip_prev >= target));
            // A skip target pruned away is passed over for the parent.
            let skip = node
                .skip
                .filter(|_| want_skip)
                .and_then(|s| Some((s, self.nodes.get(&s)?)));
            if let Some((s, next)) = skip {
                (cur, node, height) = (s, next, h_skip);
            } else {
                let prev = node.share.prev_hash()?;
                (cur, node, height) = (prev, self.nodes.get(&prev)?, height - 1);
            }
        }
        Some(cur)
    }

    /// Sum of [`TrackedShare::aux_work`] over `hash` and its `count - 1` nearest ancestors, with
    /// the oldest of them; `None` unless all are held.
    pub fn sum_aux(&self, hash: &ShareHash, count: u32) -> Option<(u128, ShareHash)> {
        let newest = self.nodes.get(hash)?;
        let oldest_hash = self.nth_ancestor(hash, count.checked_sub(1)?)?;
        let oldest = self.nodes.get(&oldest_hash)?;
        let sum = newest.cum_aux - oldest.cum_aux + oldest.share.aux_work();
        Some((sum, oldest_hash))
    }

    /// Iterates from `hash` down through its held ancestors.
    pub fn ancestors<'a>(&'a self, hash: &ShareHash) -> impl Iterator<Item = &'a Arc<S>> + 'a {
        let mut cur = self.nodes.get(hash);
        std::iter::from_fn(move || {
            let node = cur?;
            cur = node.share.prev_hash().and_then(|p| self.nodes.get(&p));
            Some(&node.share)
        })
    }

    /// Held shares whose parent is not held (the bottoms of the trees).
    pub fn tails(&self) -> Vec<ShareHash> {
        self.nodes
            .iter()
            .filter(|(_, n)| {
                n.share
                    .prev_hash()
                    .is_none_or(|p| !self.nodes.contains_key(&p))
            })
            .map(|(h, _)| *h)
            .collect()
    }

    /// Held shares without children.
    pub fn heads(&self) -> Vec<ShareHash> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.children.is_empty())
            .map(|(h, _)| *h)
            .collect()
    }

    /// The skip pointer of a node at `height` whose parent is `parent`.
    pub(crate) fn skip_for(&self, parent: Option<&ShareHash>, height: u32) -> Option<ShareHash> {
        let parent = parent?;
        let parent_height = self.nodes.get(parent)?.height;
        self.nth_ancestor(parent, parent_height.checked_sub(skip_height(height))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_heights_match_bitcoin_core() {
        // Values of Bitcoin Core's GetSkipHeight.
        let expected = [
            (2, 0),
            (3, 1),
            (4, 0),
            (5, 1),
            (6, 4),
            (7, 1),
            (8, 0),
            (9, 1),
            (10, 8),
            (11, 1),
            (12, 8),
            (13, 1),
            (100, 96),
            (1001, 961),
        ];
        for (h, s) in expected {
            assert_eq!(skip_height(h), s, "height {h}");
            assert!(skip_height(h) < h);
        }
    }
}
