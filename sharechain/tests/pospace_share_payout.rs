//! The split of a block's pool reward over a PoSpace PPLNS window: exact to the mojo, each payee
//! within one mojo of its exact proportion, the same on every node.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sharechain::pospace_share::testkit::ProofBook;
use sharechain::pospace_share::{
    new_pospace_tracker, pool_reward_part, required_difficulty, split_reward, window_weights,
    ChiaNetwork,
};

proptest! {
    #[test]
    fn split_is_exact_and_fair(
        amount in any::<u64>(),
        weights in prop::collection::btree_map(any::<[u8; 32]>(), 0u64..(1 << 40), 0..60),
    ) {
        let payouts = split_reward(amount, &weights);
        let total: u128 = weights.values().map(|&w| u128::from(w)).sum();
        if total == 0 {
            prop_assert!(payouts.is_empty());
            return Ok(());
        }
        let sum: u128 = payouts.iter().map(|p| u128::from(p.mojos)).sum();
        prop_assert_eq!(sum, u128::from(amount));
        for p in &payouts {
            let w = u128::from(weights[&p.puzzle_hash]);
            prop_assert!(w > 0);
            // |mojos − amount·w/W| < 1, in integers.
            let exact = u128::from(amount) * w;
            let got = u128::from(p.mojos) * total;
            prop_assert!(got.abs_diff(exact) < total, "{} vs {}/{}", p.mojos, exact, total);
        }
        // Deterministic, listed by puzzle hash.
        prop_assert_eq!(&split_reward(amount, &weights), &payouts);
        prop_assert!(payouts.windows(2).all(|w| w[0].puzzle_hash < w[1].puzzle_hash));
    }
}

#[test]
fn window_weights_sum_difficulty_per_payout_over_the_window() {
    static NET: ChiaNetwork = ChiaNetwork {
        window: 5,
        retarget_lookbehind: 3,
        ..ChiaNetwork::REGTEST
    };
    let book = ProofBook::parse(include_str!("vectors/chia/pospace_share_proofs_k18.csv"));
    let mut tracker = new_pospace_tracker(&NET);
    let mut prev = None;
    // Shares 0..8 paying to [i % 3; 32], found every second (the difficulty climbs).
    for i in 0..8usize {
        tracker
            .verifier_mut()
            .signage_points_mut()
            .insert(book.signage_point(i));
        let d = required_difficulty(&NET, tracker.chain(), prev.as_ref());
        let share = book.share(
            &book.content(i, prev, d, 1_700_000_000 + i as u64, [(i % 3) as u8; 32]),
            &NET,
        );
        prev = Some(share.hash());
        let changes = tracker.insert(share).unwrap();
        assert_eq!(changes.invalid, vec![]);
    }
    let tip = prev.unwrap();
    let weights = window_weights(tracker.chain(), &tip, NET.window);
    // The last five shares: 3..8, payouts 0,1,2,0,1.
    let shares: Vec<_> = tracker.chain().ancestors(&tip).take(5).collect();
    let mut expected: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for s in &shares {
        *expected.entry(s.content().payout_puzzle_hash).or_default() += s.content().difficulty;
    }
    assert_eq!(weights, expected);
    assert_eq!(weights.len(), 3);
    let amount = pool_reward_part(2_000_000_000_000);
    let payouts = split_reward(amount, &weights);
    assert_eq!(
        payouts.iter().map(|p| p.mojos).sum::<u64>(),
        1_750_000_000_000
    );
}
