//! Signage points the verifier knows (from its Chia node or the embedded clock), as facts given
//! by the caller: a share may only answer a known signage point, and says the same index and
//! peak height as the node saw. A share on an unknown one is pending, not invalid.

use std::collections::HashMap;

/// A signage point as the node saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignagePoint {
    /// The sub-slot challenge.
    pub challenge_hash: [u8; 32],
    /// The challenge-chain signage point hash.
    pub sp_hash: [u8; 32],
    /// Index in the sub-slot (0 is the sub-slot's end).
    pub index: u8,
    /// The chain's peak height when it was seen.
    pub peak_height: u32,
}

impl SignagePoint {
    /// How many signage points `self` is older than `newer` (0 when it is not older). Within one
    /// sub-slot this is the index difference; across sub-slots the peak heights measure it, at
    /// `per_block` signage points per block.
    pub fn lag_behind(&self, newer: &SignagePoint, per_block: u32) -> u64 {
        if self.challenge_hash == newer.challenge_hash {
            return u64::from(newer.index.saturating_sub(self.index));
        }
        u64::from(newer.peak_height.saturating_sub(self.peak_height)) * u64::from(per_block)
    }
}

/// Known signage points by `(challenge_hash, sp_hash)`.
#[derive(Debug, Clone, Default)]
pub struct KnownSignagePoints {
    points: HashMap<([u8; 32], [u8; 32]), SignagePoint>,
}

impl KnownSignagePoints {
    /// No signage point known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a signage point (a later report of the same one replaces the earlier).
    pub fn insert(&mut self, sp: SignagePoint) {
        self.points.insert((sp.challenge_hash, sp.sp_hash), sp);
    }

    /// Forgets a signage point (e.g. one the node dropped as too old).
    pub fn remove(&mut self, challenge_hash: &[u8; 32], sp_hash: &[u8; 32]) {
        self.points.remove(&(*challenge_hash, *sp_hash));
    }

    /// The signage point with these hashes, if known.
    pub fn get(&self, challenge_hash: &[u8; 32], sp_hash: &[u8; 32]) -> Option<&SignagePoint> {
        self.points.get(&(*challenge_hash, *sp_hash))
    }

    /// Number of known signage points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when none is known.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(ch: u8, index: u8, peak: u32) -> SignagePoint {
        SignagePoint {
            challenge_hash: [ch; 32],
            sp_hash: [index; 32],
            index,
            peak_height: peak,
        }
    }

    #[test]
    fn lag_within_and_across_sub_slots() {
        assert_eq!(sp(1, 3, 10).lag_behind(&sp(1, 9, 12), 2), 6);
        assert_eq!(sp(1, 9, 12).lag_behind(&sp(1, 3, 10), 2), 0);
        assert_eq!(sp(1, 60, 40).lag_behind(&sp(2, 2, 43), 2), 6);
        assert_eq!(sp(2, 2, 43).lag_behind(&sp(1, 60, 40), 2), 0);
    }
}
