//! PoSpace shares in the generic tracker: [`PoSpaceShare`] as a [`TrackedShare`] (work and
//! retarget weight = difficulty) and [`PoSpaceVerifier`], the chain rules: a known signage point
//! not too far behind the parent's, timestamps that do not go back, the difficulty the chain
//! requires (never the farmer's choice), the stand-alone checks, and one share per plot and
//! signage point in the window.
//!
//! # Retarget
//! The first share of a chain has the network's initial difficulty. After that, with `n` the
//! parent and up to `retarget_lookbehind − 1` of its ancestors, the difficulty done between the
//! oldest and the parent (the oldest excluded) over the seconds between their timestamps,
//! times the share period, is the target; it is held within 10% (at least 1) of the parent's
//! difficulty per share and within the network's bounds. Integer math, same on every node.

use std::collections::HashMap;

use super::check::{check_proof, check_signature, precheck, signage_point, Quality, ShareError};
use super::params::ChiaNetwork;
use super::signage::{KnownSignagePoints, SignagePoint};
use super::wire::PoSpaceShare;
use crate::chain::{Chain, TrackedShare};
use crate::share::{ShareHash, ShareHashMap};
use crate::tracker::{Changes, InsertError, ShareTracker, TrackerConfig, Verifier};

impl TrackedShare for PoSpaceShare {
    /// Shares do not build on an outside tip: signage points are checked by the verifier.
    type Tip = ();

    fn hash(&self) -> ShareHash {
        PoSpaceShare::hash(self)
    }

    fn prev_hash(&self) -> Option<ShareHash> {
        self.content().prev_share
    }

    fn work(&self) -> u128 {
        u128::from(self.content().difficulty)
    }

    fn builds_on(&self, _tip: &()) -> bool {
        true
    }

    fn aux_work(&self) -> u128 {
        u128::from(self.content().difficulty)
    }
}

/// The tracker of PoSpace shares.
pub type PoSpaceTracker = ShareTracker<PoSpaceShare, PoSpaceVerifier>;

/// A tracker for `network`'s PoSpace share chain.
pub fn new_pospace_tracker(network: &'static ChiaNetwork) -> PoSpaceTracker {
    ShareTracker::new(
        TrackerConfig::new(network.window),
        PoSpaceVerifier::new(network),
    )
}

/// A plot answering a signage point.
type ProofKey = ([u8; 32], [u8; 32], [u8; 32]);

fn proof_key(share: &PoSpaceShare) -> ProofKey {
    let c = share.content();
    (*share.plot_id(), c.challenge_hash, c.sp_hash)
}

fn sp_of(share: &PoSpaceShare) -> SignagePoint {
    let c = share.content();
    SignagePoint {
        challenge_hash: c.challenge_hash,
        sp_hash: c.sp_hash,
        index: c.signage_point_index,
        peak_height: c.peak_height,
    }
}

/// The rules of PoSpace shares on one network.
#[derive(Debug)]
pub struct PoSpaceVerifier {
    network: &'static ChiaNetwork,
    known: KnownSignagePoints,
    /// Held shares by the plot and signage point they answer (duplicate look-ups).
    answered: HashMap<ProofKey, Vec<ShareHash>>,
    indexed: ShareHashMap<ProofKey>,
    /// Results of [`Self::precheck`], used once by `verify`.
    prechecked: ShareHashMap<Result<Quality, ShareError>>,
}

impl PoSpaceVerifier {
    /// The rules of `network`, knowing no signage point yet.
    pub fn new(network: &'static ChiaNetwork) -> Self {
        PoSpaceVerifier {
            network,
            known: KnownSignagePoints::new(),
            answered: HashMap::new(),
            indexed: ShareHashMap::default(),
            prechecked: ShareHashMap::default(),
        }
    }

    /// The network.
    pub fn network(&self) -> &'static ChiaNetwork {
        self.network
    }

    /// The known signage points.
    pub fn signage_points(&self) -> &KnownSignagePoints {
        &self.known
    }

    /// The known signage points, to add new ones (then retry the tracker's pending shares).
    pub fn signage_points_mut(&mut self) -> &mut KnownSignagePoints {
        &mut self.known
    }

    /// Runs the costly stand-alone checks of many shares at once (proofs over `threads`
    /// threads, signatures in one batch); `verify` then uses the results.
    pub fn precheck(&mut self, shares: &[&PoSpaceShare], threads: usize) {
        let results = precheck(shares, self.network, threads);
        self.add_prechecked(shares.iter().map(|s| s.hash()).zip(results));
    }

    /// Results of [`precheck`] run elsewhere (e.g. without the tracker's lock), by share hash,
    /// for `verify` to use once instead of checking the proof and signature again.
    pub fn add_prechecked(
        &mut self,
        results: impl IntoIterator<Item = (ShareHash, Result<Quality, ShareError>)>,
    ) {
        self.prechecked.extend(results);
    }

    /// The difficulty the chain requires of a share whose parent is `parent`.
    pub fn required_difficulty(
        &self,
        chain: &Chain<PoSpaceShare>,
        parent: Option<&ShareHash>,
    ) -> u64 {
        required_difficulty(self.network, chain, parent)
    }

    fn index(&mut self, share: &PoSpaceShare) {
        let hash = share.hash();
        if self.indexed.contains_key(&hash) {
            return;
        }
        let key = proof_key(share);
        self.answered.entry(key).or_default().push(hash);
        self.indexed.insert(hash, key);
    }

    /// A share of the window below `share` answering the same signage point with the same plot.
    fn duplicate(
        &mut self,
        share: &PoSpaceShare,
        chain: &Chain<PoSpaceShare>,
    ) -> Option<ShareHash> {
        let parent = share.content().prev_share.filter(|p| chain.contains(p))?;
        if !chain.is_verified(&parent) {
            // History below the first verified share: index the window it reads once.
            let window: Vec<_> = chain
                .ancestors(&parent)
                .take(self.network.window as usize)
                .cloned()
                .collect();
            for s in window {
                self.index(&s);
            }
        }
        let parent_height = chain.height(&parent)?;
        let others = self.answered.get(&proof_key(share))?;
        others.iter().copied().find(|other| {
            chain.height(other).is_some_and(|h| {
                h <= parent_height
                    && parent_height - h < self.network.window
                    && chain.nth_ancestor(&parent, parent_height - h) == Some(*other)
            })
        })
    }
}

/// See the module documentation.
pub fn required_difficulty(
    network: &ChiaNetwork,
    chain: &Chain<PoSpaceShare>,
    parent: Option<&ShareHash>,
) -> u64 {
    let Some((parent, share)) = parent.and_then(|p| Some((p, chain.get(p)?))) else {
        return network.initial_difficulty;
    };
    let prev = u128::from(share.content().difficulty);
    let n = network
        .retarget_lookbehind
        .min(chain.height(parent).unwrap_or(1));
    let target = match chain.sum_aux(parent, n) {
        Some((sum, oldest_hash)) if n >= 2 => {
            let oldest = chain.get(&oldest_hash).map(|s| s.content());
            let (old_diff, old_time) = oldest.map_or((0, 0), |c| (c.difficulty, c.timestamp));
            let span = share.content().timestamp.saturating_sub(old_time).max(1);
            (sum - u128::from(old_diff)) * u128::from(network.share_period) / u128::from(span)
        }
        _ => prev,
    };
    let step = (prev / 10).max(1);
    let bounded = target.clamp(prev.saturating_sub(step), prev + step);
    let bounded = u64::try_from(bounded).unwrap_or(u64::MAX);
    bounded.clamp(network.min_difficulty, network.max_difficulty)
}

impl Verifier<PoSpaceShare> for PoSpaceVerifier {
    type Error = ShareError;

    fn verify(
        &mut self,
        share: &PoSpaceShare,
        chain: &Chain<PoSpaceShare>,
    ) -> Result<(), ShareError> {
        let sp = signage_point(share, &self.known)?;
        let c = share.content();
        let parent = c.prev_share.as_ref().and_then(|p| chain.get(p));
        if let Some(parent) = parent {
            let lag = sp.lag_behind(&sp_of(parent), self.network.signage_points_per_block);
            if lag > u64::from(self.network.max_signage_point_lag) {
                return Err(ShareError::StaleSignagePoint {
                    lag,
                    max: self.network.max_signage_point_lag,
                });
            }
            let parent_time = parent.content().timestamp;
            if c.timestamp < parent_time {
                return Err(ShareError::Timestamp {
                    got: c.timestamp,
                    parent: parent_time,
                });
            }
        }
        let required = required_difficulty(self.network, chain, c.prev_share.as_ref());
        if c.difficulty != required {
            return Err(ShareError::FarmerDifficulty {
                got: c.difficulty,
                required,
            });
        }
        let prechecked = self.prechecked.remove(&share.hash());
        if let Some(Err(e)) = prechecked {
            return Err(e);
        }
        if prechecked.is_none() {
            check_proof(share, self.network)?;
        }
        if let Some(other) = self.duplicate(share, chain) {
            return Err(ShareError::DuplicateProof(other));
        }
        if prechecked.is_none() {
            check_signature(share)?;
        }
        self.index(share);
        Ok(())
    }

    fn forget(&mut self, hash: &ShareHash) {
        self.prechecked.remove(hash);
        if let Some(key) = self.indexed.remove(hash) {
            if let Some(list) = self.answered.get_mut(&key) {
                list.retain(|h| h != hash);
                if list.is_empty() {
                    self.answered.remove(&key);
                }
            }
        }
    }

    fn is_pending(error: &ShareError) -> bool {
        error.is_pending()
    }
}

/// Inserts many shares (e.g. a stored window at startup): their proofs and signatures are
/// checked together first, over `threads` threads and in one signature batch.
pub fn insert_many(
    tracker: &mut PoSpaceTracker,
    shares: Vec<PoSpaceShare>,
    threads: usize,
) -> Vec<Result<Changes<ShareError>, InsertError>> {
    let refs: Vec<&PoSpaceShare> = shares.iter().collect();
    tracker.verifier_mut().precheck(&refs, threads);
    shares.into_iter().map(|s| tracker.insert(s)).collect()
}
