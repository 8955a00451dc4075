//! Outside facts a peer's share must agree with before it is verified: a share kind's
//! [`ShareContext`] answers, for each share arriving from gossip, whether the world outside the
//! share chain knows what it builds on (for Chia shares: whether this node's chia full node knows
//! the share's signage point). Without a context (the default, e.g. the embedded regtest clock)
//! every share goes straight to the tracker.
//!
//! A share whose context is not known yet is held (`HeldShares`, bounded): not inserted, not
//! gossiped on. The worker checks held shares again every [`RECHECK_EVERY`]; once known, a share
//! is inserted and gossiped as if it had just arrived; still unknown after the context's grace
//! period, it is dropped and its sender penalised as for an invalid share, the reason counted.
//!
//! Shares fetched by the sync protocol skip the context: they are history (a chia full node only
//! remembers recent signage points), and the verifier's own rules still hold for them.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use sharechain::tracker::TrackedShare;
use sharechain::ShareHash;

use super::kind::ShareKind;

/// How often held shares are checked again.
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// Shares held at most; later ones are dropped (without penalty) while it is full.
pub const MAX_HELD: usize = 1024;

/// What the context says about a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextVerdict {
    /// Known: the share goes on to verification.
    Known,
    /// Not known (yet), and why: the share is held and checked again.
    Unknown(String),
    /// Contradicts what is known: the share is refused and its sender penalised.
    Invalid(String),
}

/// The outside facts a share kind's shares are checked against: see the module documentation.
pub trait ShareContext<K: ShareKind>: Send + Sync + 'static {
    /// What is known about `share`'s context now. Never blocks (it may start a look-up whose
    /// answer a later call sees).
    fn check(&self, share: &K::Share) -> ContextVerdict;

    /// Called on the share worker, with the tracker locked, just before a share judged
    /// [`ContextVerdict::Known`] is inserted: gives the verifier the facts it needs (e.g. a
    /// signage point the node learnt by asking its full node).
    fn admit(&self, _share: &K::Share, _verifier: &mut K::Verifier) {}

    /// How long a share may stay unknown before it is dropped.
    fn grace(&self) -> Duration;
}

/// A share waiting for its context.
pub(super) struct Held<S> {
    pub(super) share: S,
    pub(super) bytes: Vec<u8>,
    pub(super) from: PeerId,
    pub(super) since: Instant,
    /// The last "unknown" reason.
    pub(super) reason: String,
}

/// What the held set has done, for the API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ContextCounts {
    /// Shares held now.
    pub held: usize,
    /// Shares ever held.
    pub held_total: u64,
    /// Held shares whose context became known (then verified as usual).
    pub released: u64,
    /// Held shares dropped when their grace period ran out (sender penalised).
    pub expired: u64,
    /// Shares dropped because the held set was full (sender not penalised).
    pub overflow: u64,
    /// Shares refused by the context (sender penalised).
    pub refused: u64,
    /// Refusals and expiries by reason (the reason's first words, e.g. "signage point unknown").
    pub reasons: BTreeMap<String, u64>,
}

/// The bounded set of held shares, oldest first.
pub(super) struct HeldShares<S> {
    shares: VecDeque<Held<S>>,
    pub(super) counts: ContextCounts,
}

impl<S> Default for HeldShares<S> {
    fn default() -> Self {
        HeldShares {
            shares: VecDeque::new(),
            counts: ContextCounts::default(),
        }
    }
}

impl<S: TrackedShare> HeldShares<S> {
    /// Holds `held` unless it is held already; false when the set is full.
    pub(super) fn hold(&mut self, held: Held<S>) -> bool {
        let hash = held.share.hash();
        if self.contains(&hash) {
            return true;
        }
        if self.shares.len() >= MAX_HELD {
            self.counts.overflow += 1;
            return false;
        }
        self.counts.held_total += 1;
        self.shares.push_back(held);
        self.counts.held = self.shares.len();
        true
    }

    pub(super) fn contains(&self, hash: &ShareHash) -> bool {
        self.shares.iter().any(|h| h.share.hash() == *hash)
    }

    /// All held shares, to check again (put back with [`Self::hold_again`]).
    pub(super) fn take(&mut self) -> Vec<Held<S>> {
        let out = self.shares.drain(..).collect();
        self.counts.held = 0;
        out
    }

    /// Puts back a share taken by [`Self::take`], keeping its time.
    pub(super) fn hold_again(&mut self, held: Held<S>) {
        self.shares.push_back(held);
        self.counts.held = self.shares.len();
    }

    pub(super) fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// Counts a refusal or expiry under its reason.
    pub(super) fn count_reason(&mut self, reason: &str) {
        *self.counts.reasons.entry(reason_key(reason)).or_default() += 1;
    }
}

/// A reason's key in [`ContextCounts::reasons`]: its text up to the first colon (the rest names
/// the share's particulars).
pub fn reason_key(reason: &str) -> String {
    reason.split(':').next().unwrap_or(reason).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_keyed_by_their_first_words() {
        assert_eq!(
            reason_key("signage point unknown to the chia full node: 0xab"),
            "signage point unknown to the chia full node"
        );
        assert_eq!(reason_key("plain"), "plain");
    }
}
