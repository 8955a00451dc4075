//! Who is owed what when a member of the pool wins a Chia block: the PPLNS window over PoSpace
//! shares and the split of the block's pool part by payout puzzle hash.
//!
//! # What is enforced, and what is not
//! Chia consensus pays every block reward itself: 7/8 to the winning plot's pool target (its
//! pool contract puzzle hash, or for an OG plot the farmer's pool address), 1/8 plus fees to the
//! farmer's target. A share chain cannot move those coins. What every node agrees on, because it
//! follows from the verified share chain alone, is the *ledger*: for each block a member wins,
//! which payout puzzle hash earned how many mojos of the pool part. Paying that out (from the
//! winning plot's pool target) is outside this crate and outside consensus.
//!
//! # The window
//! The shares counted for a block are the `window` shares ending with the share that carried
//! the winning proof (inclusive; fewer near the start of a chain). Each weighs its difficulty,
//! summed per payout puzzle hash.
//!
//! # Rounding
//! Exact to the mojo: payee `i` of weight `wᵢ` out of `W` first gets `⌊amount·wᵢ/W⌋`; the few
//! mojos left (fewer than the number of payees) go one each to the payees with the largest
//! remainders `amount·wᵢ mod W`, ties to the smaller puzzle hash. So the parts add up to
//! `amount` exactly and each is within one mojo of its exact proportion; there is no dust kept
//! back. Payouts are listed by puzzle hash.

use std::collections::BTreeMap;

use super::wire::PoSpaceShare;
use crate::chain::Chain;
use crate::share::ShareHash;

/// One payee's part of a reward, in mojos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payout {
    /// The payee's puzzle hash (the share's `payout_puzzle_hash`).
    pub puzzle_hash: [u8; 32],
    /// The payee's amount, in mojos.
    pub mojos: u64,
}

/// The pool part of a block reward: ⌊7/8 · reward⌋ (chia's `calculate_pool_reward` share).
pub fn pool_reward_part(block_reward_mojos: u64) -> u64 {
    let r = u128::from(block_reward_mojos);
    // Fits: 7/8 of a u64 is a u64.
    (r * 7 / 8) as u64
}

/// Difficulty per payout puzzle hash over the `window` shares ending with `newest` (inclusive).
pub fn window_weights(
    chain: &Chain<PoSpaceShare>,
    newest: &ShareHash,
    window: u32,
) -> BTreeMap<[u8; 32], u64> {
    let mut weights = BTreeMap::new();
    for share in chain.ancestors(newest).take(window as usize) {
        let c = share.content();
        let w: &mut u64 = weights.entry(c.payout_puzzle_hash).or_default();
        *w = w.saturating_add(c.difficulty);
    }
    weights
}

/// Splits `amount` mojos by `weights` (see the module documentation for the rounding rule).
/// Payees of weight zero get nothing and are not listed; no weight at all gives no payouts.
pub fn split_reward(amount: u64, weights: &BTreeMap<[u8; 32], u64>) -> Vec<Payout> {
    let total: u128 = weights.values().map(|&w| u128::from(w)).sum();
    if total == 0 {
        return Vec::new();
    }
    let amount128 = u128::from(amount);
    // (floor part, remainder, puzzle hash); amount·w fits in u128 (both are u64).
    let mut parts: Vec<(u64, u128, [u8; 32])> = weights
        .iter()
        .filter(|(_, &w)| w > 0)
        .map(|(ph, &w)| {
            let exact = amount128 * u128::from(w);
            ((exact / total) as u64, exact % total, *ph)
        })
        .collect();
    let given: u64 = parts.iter().map(|p| p.0).sum();
    let left = (amount - given) as usize;
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| {
        parts[b]
            .1
            .cmp(&parts[a].1)
            .then(parts[a].2.cmp(&parts[b].2))
    });
    for &i in order.iter().take(left) {
        parts[i].0 += 1;
    }
    parts
        .into_iter()
        .map(|(mojos, _, puzzle_hash)| Payout { puzzle_hash, mojos })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remainders_go_to_the_largest_fractions_then_smaller_hashes() {
        let w = BTreeMap::from([([1; 32], 1), ([2; 32], 1), ([3; 32], 1)]);
        let p = split_reward(10, &w);
        assert_eq!(p.iter().map(|p| p.mojos).collect::<Vec<_>>(), vec![4, 3, 3]);
        let w = BTreeMap::from([([1; 32], 1), ([2; 32], 2)]);
        assert_eq!(
            split_reward(2, &w)
                .iter()
                .map(|p| p.mojos)
                .collect::<Vec<_>>(),
            vec![1, 1]
        );
        assert!(split_reward(5, &BTreeMap::new()).is_empty());
        assert_eq!(pool_reward_part(2_000_000_000_000), 1_750_000_000_000);
        assert_eq!(
            pool_reward_part(u64::MAX),
            (u128::from(u64::MAX) * 7 / 8) as u64
        );
    }
}
