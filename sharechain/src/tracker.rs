//! `ShareTracker`: the verified share graph and the choice of the best chain.
//!
//! Shares are inserted unverified. A share is verified once its parent is verified, once it is
//! the first share of the chain, or once it has `chain_length` held ancestors below it (the
//! history its rules read). A share that fails verification is dropped with all its
//! descendants. The best share is the verified head with the most cumulative work; a head that
//! does not build on the current external tip (the Bitcoin block) counts as its parent; ties go to
//! the lower hash, so every node that holds the same shares picks the same one. Shares more than `2 × chain_length` below the best one, and forks that
//! fell more than `chain_length` behind, are pruned; so are trees other than the best share's
//! that took in no share during the last `2 × chain_length` insertions (a sync in progress keeps
//! its tree fresh; shares that never connect do not stay for ever).
//!
//! A verifier may answer "not yet" ([`Verifier::is_pending`]: the share depends on outside facts
//! the node does not have yet, such as a Chia signage point). Such a share stays held and
//! unverified, its children wait behind it, and [`ShareTracker::retry_pending`] verifies it again
//! once the caller has given the verifier what was missing.
//!
//! [`ShareTracker::insert`] returns what changed as a [`Changes`] value for the node to act on
//! (persist, request parents, penalise peers, switch work). The tracker is generic over the share
//! kind ([`TrackedShare`]) and its rules ([`Verifier`]).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bitcoin::hashes::Hash as _;
use thiserror::Error;

use crate::chain::Node;
pub use crate::chain::{Chain, TrackedShare};
use crate::share::{ShareHash, ShareHashMap, ShareHashSet};

/// The rules of a share kind, applied by the tracker to each share in chain order.
pub trait Verifier<S> {
    /// Why a share is invalid.
    type Error: std::error::Error + Clone;
    /// Checks `share` against the chain below it (all its needed ancestors are held).
    fn verify(&mut self, share: &S, chain: &Chain<S>) -> Result<(), Self::Error>;
    /// A share left the tracker: drop anything cached about it.
    fn forget(&mut self, _hash: &ShareHash) {}
    /// True when `error` means "cannot be decided yet" rather than "invalid": the share is kept,
    /// unverified, until [`ShareTracker::retry_pending`].
    fn is_pending(_error: &Self::Error) -> bool {
        false
    }
}

/// Sizes that shape the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Shares of history a share's rules read (the PPLNS window length).
    pub chain_length: u32,
    /// How many recently rejected hashes are remembered.
    pub invalid_memory: usize,
}

impl TrackerConfig {
    /// The configuration for a network's chain length.
    pub fn new(chain_length: u32) -> Self {
        TrackerConfig {
            chain_length,
            invalid_memory: 10_000,
        }
    }
}

/// Why a share was not taken in.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InsertError {
    /// The share is already in the tracker.
    #[error("share {0} is already known")]
    Duplicate(ShareHash),
    /// The share was found invalid before (remembered for `invalid_memory` shares).
    #[error("share {0} was already found invalid")]
    KnownInvalid(ShareHash),
    /// The share builds on an invalid share. Shares that were waiting for it are dropped as
    /// well (`dropped`: delete them from storage).
    #[error("share {share} builds on invalid share {parent}")]
    InvalidParent {
        /// The share refused.
        share: ShareHash,
        /// Its invalid parent.
        parent: ShareHash,
        /// Waiting shares dropped with it.
        dropped: Vec<ShareHash>,
    },
}

/// A share found invalid, with the reason (descendants carry their ancestor's reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected<E> {
    /// The invalid share.
    pub hash: ShareHash,
    /// Why it is invalid.
    pub error: E,
    /// True for the share that failed itself, false for its descendants.
    pub direct: bool,
}

/// A change of the best share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BestChange {
    /// The best share before the change (`None` for an empty chain).
    pub old: Option<ShareHash>,
    /// The best share after the change.
    pub new: Option<ShareHash>,
    /// Shares of the old best chain that are not on the new one (0 for a plain extension).
    pub reorg_depth: u32,
}

/// What one tracker operation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes<E> {
    /// Shares verified by this operation, parents before children.
    pub verified: Vec<ShareHash>,
    /// Shares found invalid and removed.
    pub invalid: Vec<Rejected<E>>,
    /// Parents to request from peers: missing below the inserted shares, history still wanted.
    pub missing_parents: Vec<ShareHash>,
    /// The best share changed.
    pub best: Option<BestChange>,
    /// Shares pruned away (delete them from storage).
    pub pruned: Vec<ShareHash>,
    /// Shares whose verification is pending (see [`Verifier::is_pending`]), newly so.
    pub pending: Vec<ShareHash>,
}

impl<E> Default for Changes<E> {
    fn default() -> Self {
        Changes {
            verified: Vec::new(),
            invalid: Vec::new(),
            missing_parents: Vec::new(),
            best: None,
            pruned: Vec::new(),
            pending: Vec::new(),
        }
    }
}

/// The share tracker.
#[derive(Debug)]
pub struct ShareTracker<S: TrackedShare, V: Verifier<S>> {
    chain: Chain<S>,
    verifier: V,
    config: TrackerConfig,
    /// Children waiting for a parent that is not held, by the parent's hash.
    waiting: ShareHashMap<Vec<ShareHash>>,
    verified_heads: VerifiedHeads,
    heads: ShareHashSet,
    invalid: ShareHashSet,
    invalid_order: VecDeque<ShareHash>,
    /// Held shares whose verification answered "pending".
    pending: ShareHashSet,
    tip: Option<S::Tip>,
    best: Option<ShareHash>,
    seq: u64,
    /// The last insertion (`seq`) into each tree, by tree id.
    tree_seen: HashMap<u64, u64>,
}

/// Verified shares without verified children, also ordered by cumulative work.
#[derive(Debug, Default)]
struct VerifiedHeads {
    work: ShareHashMap<u128>,
    by_work: BTreeSet<(u128, ShareHash)>,
}

impl VerifiedHeads {
    fn insert(&mut self, hash: ShareHash, cum_work: u128) {
        if let Some(old) = self.work.insert(hash, cum_work) {
            self.by_work.remove(&(old, hash));
        }
        self.by_work.insert((cum_work, hash));
    }

    fn remove(&mut self, hash: &ShareHash) {
        if let Some(old) = self.work.remove(hash) {
            self.by_work.remove(&(old, *hash));
        }
    }

    /// A head's cumulative work changed (its subtree was attached to a parent).
    fn set_work(&mut self, hash: &ShareHash, cum_work: u128) {
        if self.work.contains_key(hash) {
            self.insert(*hash, cum_work);
        }
    }
}

/// Trees are checked for staleness once per this many insertions.
const STALE_CHECK_EVERY: u64 = 64;

impl<S: TrackedShare, V: Verifier<S>> ShareTracker<S, V> {
    /// An empty tracker.
    pub fn new(config: TrackerConfig, verifier: V) -> Self {
        ShareTracker {
            chain: Chain::default(),
            verifier,
            config,
            waiting: ShareHashMap::default(),
            verified_heads: VerifiedHeads::default(),
            heads: ShareHashSet::default(),
            invalid: ShareHashSet::default(),
            invalid_order: VecDeque::new(),
            pending: ShareHashSet::default(),
            tip: None,
            best: None,
            seq: 0,
            tree_seen: HashMap::new(),
        }
    }

    /// The share graph.
    pub fn chain(&self) -> &Chain<S> {
        &self.chain
    }

    /// The rules (e.g. to build new shares with the same caches).
    pub fn verifier(&self) -> &V {
        &self.verifier
    }

    /// The rules, to give them new outside facts (then call [`Self::retry_pending`]).
    pub fn verifier_mut(&mut self) -> &mut V {
        &mut self.verifier
    }

    /// Held shares whose verification is pending, sorted.
    pub fn pending(&self) -> Vec<ShareHash> {
        let mut out: Vec<ShareHash> = self.pending.iter().copied().collect();
        out.sort();
        out
    }

    /// Verifies the pending shares again (in arrival order), and what builds on them.
    pub fn retry_pending(&mut self) -> Changes<V::Error> {
        let mut changes = Changes::default();
        let mut queue: Vec<(u64, ShareHash)> = self
            .pending
            .iter()
            .filter_map(|h| self.chain.nodes.get(h).map(|n| (n.seen, *h)))
            .collect();
        queue.sort_unstable();
        for (_, h) in queue {
            self.verify_from(h, &mut changes);
        }
        self.update_best(&mut changes);
        self.prune(&mut changes);
        changes
    }

    /// The rules and the chain together, for building work on the best share.
    pub fn parts(&mut self) -> (&Chain<S>, &mut V) {
        (&self.chain, &mut self.verifier)
    }

    /// The best share to build on.
    pub fn best(&self) -> Option<ShareHash> {
        self.best
    }

    /// Verified shares without verified children.
    pub fn verified_heads(&self) -> Vec<ShareHash> {
        self.verified_heads.work.keys().copied().collect()
    }

    /// Shares without children.
    pub fn heads(&self) -> Vec<ShareHash> {
        self.heads.iter().copied().collect()
    }

    /// Parents that are not held, below shares that still want history.
    pub fn missing_parents(&self) -> Vec<ShareHash> {
        let mut out: Vec<ShareHash> = self.waiting.keys().copied().collect();
        out.sort();
        out
    }

    /// True when `hash` was found invalid recently.
    pub fn is_known_invalid(&self, hash: &ShareHash) -> bool {
        self.invalid.contains(hash)
    }

    /// Sets the external tip (Bitcoin block) shares should build on; may change the best share.
    pub fn set_tip(&mut self, tip: Option<S::Tip>) -> Changes<V::Error> {
        self.tip = tip;
        let mut changes = Changes::default();
        self.update_best(&mut changes);
        changes
    }

    /// Inserts a share (already checked on its own, e.g. proof of work), verifies what can be
    /// verified, and updates the best share.
    pub fn insert(&mut self, share: S) -> Result<Changes<V::Error>, InsertError> {
        let hash = share.hash();
        if self.chain.contains(&hash) {
            return Err(InsertError::Duplicate(hash));
        }
        if self.invalid.contains(&hash) {
            return Err(InsertError::KnownInvalid(hash));
        }
        if let Some(parent) = share.prev_hash().filter(|p| self.invalid.contains(p)) {
            self.remember_invalid(hash);
            let mut dropped = Vec::new();
            for child in self.waiting.remove(&hash).unwrap_or_default() {
                dropped.extend(self.remove_subtree(&child));
            }
            for d in &dropped {
                self.remember_invalid(*d);
            }
            return Err(InsertError::InvalidParent {
                share: hash,
                parent,
                dropped,
            });
        }
        let mut changes = Changes::default();
        self.attach(share, &mut changes);
        self.verify_from(hash, &mut changes);
        self.update_best(&mut changes);
        self.prune(&mut changes);
        if self.seq % STALE_CHECK_EVERY == 0 {
            self.prune_stale_trees(&mut changes);
        }
        Ok(changes)
    }

    fn attach(&mut self, share: S, changes: &mut Changes<V::Error>) {
        let hash = share.hash();
        let prev = share.prev_hash();
        let work = share.work();
        let aux = share.aux_work();
        self.seq += 1;
        let parent = prev.and_then(|p| self.chain.nodes.get(&p).map(|n| (p, n)));
        let node = match parent {
            Some((p, parent)) => Node {
                height: parent.height + 1,
                cum_work: parent.cum_work.saturating_add(work),
                cum_aux: parent.cum_aux.saturating_add(aux),
                rooted: parent.rooted,
                tree: parent.tree,
                skip: self.chain.skip_for(Some(&p), parent.height + 1),
                share: Arc::new(share),
                children: Vec::new(),
                verified: false,
                seen: self.seq,
            },
            None => Node {
                height: 1,
                cum_work: work,
                cum_aux: aux,
                rooted: prev.is_none(),
                tree: self.seq,
                skip: None,
                share: Arc::new(share),
                children: Vec::new(),
                verified: false,
                seen: self.seq,
            },
        };
        if let Some(p) = prev {
            match self.chain.nodes.get_mut(&p) {
                Some(parent) => {
                    parent.children.push(hash);
                    self.heads.remove(&p);
                }
                None => self.waiting.entry(p).or_default().push(hash),
            }
        }
        self.tree_seen.insert(node.tree, self.seq);
        self.chain.nodes.insert(hash, node);
        // Children that were waiting for this share hang below it now (their trees join its).
        let waiting = self.waiting.remove(&hash).unwrap_or_default();
        for c in &waiting {
            if let Some(tree) = self.chain.nodes.get(c).map(|n| n.tree) {
                self.tree_seen.remove(&tree);
            }
        }
        if waiting.is_empty() {
            self.heads.insert(hash);
        } else {
            self.chain
                .nodes
                .get_mut(&hash)
                .expect("just inserted")
                .children = waiting.clone();
            self.restack(&waiting);
        }
        // Ask for the parent while this tree has less history than we keep.
        if let Some(p) = prev.filter(|p| self.waiting.contains_key(p)) {
            let tallest = self.tallest_above(&hash);
            if tallest < 2 * self.config.chain_length {
                changes.missing_parents.push(p);
            }
        }
    }

    /// Recomputes height, work, skip pointers and tree of the subtrees rooted at `roots`, whose
    /// parent was just attached.
    fn restack(&mut self, roots: &[ShareHash]) {
        let mut queue: VecDeque<ShareHash> = roots.iter().copied().collect();
        while let Some(h) = queue.pop_front() {
            let Some(prev) = self.chain.nodes.get(&h).and_then(|n| n.share.prev_hash()) else {
                continue;
            };
            let Some(parent) = self.chain.nodes.get(&prev) else {
                continue;
            };
            let (height, cum, cum_aux, rooted, tree) = (
                parent.height + 1,
                parent.cum_work,
                parent.cum_aux,
                parent.rooted,
                parent.tree,
            );
            let skip = self.chain.skip_for(Some(&prev), height);
            let node = self.chain.nodes.get_mut(&h).expect("queued nodes are held");
            node.height = height;
            node.cum_work = cum.saturating_add(node.share.work());
            node.cum_aux = cum_aux.saturating_add(node.share.aux_work());
            self.verified_heads.set_work(&h, node.cum_work);
            node.rooted = rooted;
            node.tree = tree;
            node.skip = skip;
            queue.extend(node.children.iter().copied());
        }
    }

    /// Local height of the tallest share in the subtree at `hash`, counted from `hash`.
    fn tallest_above(&self, hash: &ShareHash) -> u32 {
        let Some(base) = self.chain.nodes.get(hash).map(|n| n.height) else {
            return 0;
        };
        let mut tallest = base;
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            if let Some(n) = self.chain.nodes.get(&h) {
                tallest = tallest.max(n.height);
                stack.extend(n.children.iter().copied());
            }
        }
        tallest - base + 1
    }

    fn verifiable(&self, node: &Node<S>) -> bool {
        match node.share.prev_hash() {
            None => true,
            Some(p) => match self.chain.nodes.get(&p) {
                Some(parent) if parent.verified => true,
                _ => !node.rooted && node.height == self.config.chain_length + 1,
            },
        }
    }

    /// Verifies, in chain order, what became verifiable in the subtree at `start`.
    fn verify_from(&mut self, start: ShareHash, changes: &mut Changes<V::Error>) {
        let mut queue = VecDeque::from([start]);
        while let Some(h) = queue.pop_front() {
            let Some(node) = self.chain.nodes.get(&h) else {
                continue;
            };
            if node.verified {
                continue;
            }
            if !self.verifiable(node) {
                // History below the verifiable height: look further up.
                if !node.rooted && node.height <= self.config.chain_length {
                    queue.extend(node.children.iter().copied());
                }
                continue;
            }
            let share = Arc::clone(&node.share);
            match self.verifier.verify(&share, &self.chain) {
                Ok(()) => {
                    let node = self.chain.nodes.get_mut(&h).expect("held");
                    node.verified = true;
                    queue.extend(node.children.iter().copied());
                    let cum_work = node.cum_work;
                    if let Some(p) = share.prev_hash() {
                        self.verified_heads.remove(&p);
                    }
                    self.verified_heads.insert(h, cum_work);
                    self.pending.remove(&h);
                    changes.verified.push(h);
                }
                Err(error) if V::is_pending(&error) => {
                    if self.pending.insert(h) {
                        changes.pending.push(h);
                    }
                }
                Err(error) => {
                    let removed = self.remove_subtree(&h);
                    for r in removed {
                        self.remember_invalid(r);
                        changes.verified.retain(|v| *v != r);
                        changes.invalid.push(Rejected {
                            hash: r,
                            error: error.clone(),
                            direct: r == h,
                        });
                    }
                }
            }
        }
    }

    /// Removes a share and all its descendants; returns them, the share first.
    fn remove_subtree(&mut self, hash: &ShareHash) -> Vec<ShareHash> {
        let mut removed = Vec::new();
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            if let Some(node) = self.remove_node(&h) {
                stack.extend(node.children);
                removed.push(h);
            }
        }
        removed
    }

    /// Removes one node, unlinking it from its parent and the indexes.
    fn remove_node(&mut self, hash: &ShareHash) -> Option<Node<S>> {
        let node = self.chain.nodes.remove(hash)?;
        self.pending.remove(hash);
        self.verified_heads.remove(hash);
        self.heads.remove(hash);
        self.verifier.forget(hash);
        if let Some(p) = node.share.prev_hash() {
            if let Some(parent) = self.chain.nodes.get_mut(&p) {
                parent.children.retain(|c| c != hash);
                let (parent_verified, siblings, parent_work) =
                    (parent.verified, parent.children.clone(), parent.cum_work);
                if siblings.is_empty() {
                    self.heads.insert(p);
                }
                if parent_verified && !siblings.iter().any(|c| self.chain.is_verified(c)) {
                    self.verified_heads.insert(p, parent_work);
                }
            } else if let Some(w) = self.waiting.get_mut(&p) {
                w.retain(|c| c != hash);
                if w.is_empty() {
                    self.waiting.remove(&p);
                }
            }
        }
        // Children of a removed share wait for it again unless they go too.
        for c in &node.children {
            if self.chain.nodes.contains_key(c) {
                self.waiting.entry(*hash).or_default().push(*c);
            }
        }
        Some(node)
    }

    fn remember_invalid(&mut self, hash: ShareHash) {
        if self.invalid.insert(hash) {
            self.invalid_order.push_back(hash);
            while self.invalid_order.len() > self.config.invalid_memory {
                if let Some(old) = self.invalid_order.pop_front() {
                    self.invalid.remove(&old);
                }
            }
        }
    }

    /// The share a head stands for: its parent when it does not build on the current tip.
    fn effective(&self, head: &ShareHash) -> ShareHash {
        let (Some(tip), Some(node)) = (&self.tip, self.chain.nodes.get(head)) else {
            return *head;
        };
        if node.share.builds_on(tip) {
            return *head;
        }
        match self.chain.parent(head) {
            Some(p) if self.chain.is_verified(&p) => p,
            _ => *head,
        }
    }

    fn compute_best(&self) -> Option<ShareHash> {
        // Equal work goes to the lower hash (the share with more proof of work beyond its
        // target), not to the one seen first: arrival order differs from node to node, and
        // after a tie between two nodes' shares each would keep its own until the next share.
        let pow = |h: &ShareHash| {
            let mut b = h.to_byte_array();
            b.reverse();
            b
        };
        // Heads by cumulative work, most first: a head stands for itself or its parent, never
        // for more work than its own, so once a head has less work than the best found so far
        // no later one can win (stale siblings stay heads until pruned: there can be many).
        let mut best: Option<(ShareHash, u128)> = None;
        for (head_work, head) in self.verified_heads.by_work.iter().rev() {
            if best.is_some_and(|(_, work)| *head_work < work) {
                break;
            }
            let candidate = self.effective(head);
            let Some(work) = self.chain.nodes.get(&candidate).map(|n| n.cum_work) else {
                continue;
            };
            let better = best.is_none_or(|(b, best_work)| {
                work.cmp(&best_work).then(pow(&b).cmp(&pow(&candidate))) == Ordering::Greater
            });
            if better {
                best = Some((candidate, work));
            }
        }
        best.map(|(h, _)| h)
    }

    fn update_best(&mut self, changes: &mut Changes<V::Error>) {
        let new = self.compute_best();
        if new == self.best {
            return;
        }
        let old = self.best;
        let reorg_depth = match (old, new) {
            (Some(o), Some(n)) => self.reorg_depth(&o, &n),
            _ => 0,
        };
        self.best = new;
        changes.best = Some(BestChange {
            old,
            new,
            reorg_depth,
        });
    }

    /// Shares on `old`'s chain that are not on `new`'s.
    fn reorg_depth(&self, old: &ShareHash, new: &ShareHash) -> u32 {
        let (Some(o), Some(n)) = (self.chain.nodes.get(old), self.chain.nodes.get(new)) else {
            return 0;
        };
        if o.tree != n.tree {
            return o.height;
        }
        let common = o.height.min(n.height);
        let (mut a, mut b) = (
            self.chain.nth_ancestor(old, o.height - common),
            self.chain.nth_ancestor(new, n.height - common),
        );
        let mut depth = o.height - common;
        while let (Some(x), Some(y)) = (a, b) {
            if x == y {
                return depth;
            }
            depth += 1;
            a = self.chain.parent(&x);
            b = self.chain.parent(&y);
        }
        depth
    }

    /// Drops trees other than the best share's into which nothing was inserted during the last
    /// `2 × chain_length` insertions.
    fn prune_stale_trees(&mut self, changes: &mut Changes<V::Error>) {
        let limit = 2 * u64::from(self.config.chain_length);
        let seq = self.seq;
        let best_tree = self
            .best
            .and_then(|b| self.chain.nodes.get(&b))
            .map(|n| n.tree);
        let seen = &self.tree_seen;
        let stale =
            |tree: u64| Some(tree) != best_tree && seen.get(&tree).is_none_or(|&s| s + limit < seq);
        // Every tree has an entry (a tree has one bottom share): most checks end here.
        if !seen.keys().any(|t| stale(*t)) {
            return;
        }
        let tails: Vec<ShareHash> = self
            .chain
            .tails()
            .into_iter()
            .filter(|t| self.chain.nodes.get(t).is_some_and(|n| stale(n.tree)))
            .collect();
        for tail in tails {
            changes.pruned.extend(self.remove_subtree(&tail));
        }
        self.tree_seen
            .retain(|tree, s| Some(*tree) == best_tree || *s + limit >= seq);
    }

    /// Drops history more than `2 × chain_length` below the best share, and forks that fell
    /// more than `chain_length` behind it.
    fn prune(&mut self, changes: &mut Changes<V::Error>) {
        let Some(best) = self.best else { return };
        let keep = 2 * self.config.chain_length;
        if let Some(cut) = self.chain.nth_ancestor(&best, keep) {
            let mut keep_child = cut;
            let mut below = self.chain.parent(&cut);
            while let Some(p) = below {
                below = self.chain.parent(&p);
                let others: Vec<ShareHash> = self
                    .chain
                    .children(&p)
                    .iter()
                    .copied()
                    .filter(|c| *c != keep_child)
                    .collect();
                for c in others {
                    changes.pruned.extend(self.remove_subtree(&c));
                }
                if let Some(node) = self.chain.nodes.remove(&p) {
                    self.pending.remove(&p);
                    self.verified_heads.remove(&p);
                    self.heads.remove(&p);
                    self.verifier.forget(&p);
                    if let Some(pp) = node.share.prev_hash() {
                        if let Some(w) = self.waiting.get_mut(&pp) {
                            w.retain(|c| *c != p);
                            if w.is_empty() {
                                self.waiting.remove(&pp);
                            }
                        }
                    }
                    changes.pruned.push(p);
                }
                keep_child = p;
            }
            // Pruned history is not missing: nobody should ask peers for it.
            self.waiting
                .retain(|_, children| children.iter().all(|c| *c != cut));
        }
        let Some(best_node) = self.chain.nodes.get(&best) else {
            return;
        };
        let (best_height, best_tree) = (best_node.height, best_node.tree);
        let dead: Vec<ShareHash> = self
            .heads
            .iter()
            .filter(|h| **h != best)
            .filter(|h| {
                self.chain.nodes.get(*h).is_some_and(|n| {
                    n.tree == best_tree && n.height + self.config.chain_length < best_height
                })
            })
            .copied()
            .collect();
        for head in dead {
            let mut cur = Some(head);
            while let Some(h) = cur {
                let Some(node) = self.chain.nodes.get(&h) else {
                    break;
                };
                let on_best = self
                    .chain
                    .nth_ancestor(&best, best_height.saturating_sub(node.height))
                    == Some(h);
                if on_best || !node.children.is_empty() {
                    break;
                }
                cur = self.chain.parent(&h);
                self.remove_node(&h);
                self.waiting.remove(&h);
                changes.pruned.push(h);
            }
        }
    }
}
