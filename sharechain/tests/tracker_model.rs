//! Property: whatever the shape of the share forest and the order shares arrive in, the
//! tracker's best share is the one a naive model picks — the valid head (a share whose
//! ancestors are all valid and which has no valid child) with the most cumulative work, the
//! lower hash winning ties (test hashes order as their ids).

mod common;

use common::{h, id_of, tracker, Toy};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Forest {
    /// Share i: (parent index or None, work, valid).
    shares: Vec<(Option<usize>, u128, bool)>,
    /// Insertion order (a permutation of 0..len).
    order: Vec<usize>,
}

fn forest() -> impl Strategy<Value = Forest> {
    (1usize..40)
        .prop_flat_map(|n| {
            let shares = (0..n)
                .map(|i| {
                    let parent = if i == 0 {
                        Just(None).boxed()
                    } else {
                        prop_oneof![1 => Just(None), 9 => (0..i).prop_map(Some)].boxed()
                    };
                    (parent, 1u128..5, prop::bool::weighted(0.9))
                })
                .collect::<Vec<_>>();
            (shares, Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        })
        .prop_map(|(shares, order)| Forest { shares, order })
}

/// Share `i` and all its ancestors are valid.
fn all_valid(f: &Forest, mut i: usize) -> bool {
    loop {
        let (parent, _, valid) = f.shares[i];
        if !valid {
            return false;
        }
        match parent {
            None => return true,
            Some(p) => i = p,
        }
    }
}

/// Work of share `i` and all its ancestors.
fn cum_work(f: &Forest, mut i: usize) -> u128 {
    let mut w = 0;
    loop {
        w += f.shares[i].1;
        match f.shares[i].0 {
            None => return w,
            Some(p) => i = p,
        }
    }
}

/// The naive model: walk everything from scratch (every share on the block tip).
fn model_best(f: &Forest) -> Option<u32> {
    model_best_on_tip(f, &vec![0; f.shares.len()], 0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn best_share_matches_the_naive_model(f in forest()) {
        let mut t = tracker(1000);
        for &i in &f.order {
            let (parent, work, valid) = f.shares[i];
            // Refusals (a parent already known invalid) are part of the behaviour under test.
            let _ = t.insert(Toy { id: i as u32, prev: parent.map(|p| p as u32), work, tip: 0, valid });
        }
        prop_assert_eq!(t.best().map(|b| id_of(&b)), model_best(&f));
        // Every held share is verified once all parents are in (all trees reach a root).
        for i in 0..f.shares.len() as u32 {
            if t.chain().contains(&h(i)) {
                prop_assert!(t.chain().is_verified(&h(i)), "share {} held but unverified", i);
            }
        }
        prop_assert!(t.missing_parents().is_empty());
    }
}

/// The model with the block tip: a head that does not build on the tip stands for its parent
/// when that is valid; the best is the candidate with the most work, the lower id on ties.
fn model_best_on_tip(f: &Forest, tips: &[u8], tip: u8) -> Option<u32> {
    let n = f.shares.len();
    let ok = |i: usize| all_valid(f, i);
    let cum = |i: usize| cum_work(f, i);
    let stands_for = |i: usize| match f.shares[i].0 {
        Some(p) if tips[i] != tip && ok(p) => p,
        _ => i,
    };
    (0..n)
        .filter(|&i| ok(i))
        .filter(|&i| !(0..n).any(|c| f.shares[c].0 == Some(i) && ok(c)))
        .map(stands_for)
        .max_by(|&a, &b| cum(a).cmp(&cum(b)).then(b.cmp(&a)))
        .map(|i| i as u32)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Many stale heads and a block tip that some of them miss: the best share is still the
    /// model's, whether the tip is known before the shares or set after them.
    #[test]
    fn best_share_on_a_tip_matches_the_naive_model(
        f in forest(),
        tips in prop::collection::vec(0u8..2, 40),
        tip in 0u8..2,
        tip_first in any::<bool>(),
    ) {
        let mut t = tracker(1000);
        if tip_first {
            let _ = t.set_tip(Some(tip));
        }
        for &i in &f.order {
            let (parent, work, valid) = f.shares[i];
            let _ = t.insert(Toy { id: i as u32, prev: parent.map(|p| p as u32), work, tip: tips[i], valid });
        }
        if !tip_first {
            let _ = t.set_tip(Some(tip));
        }
        prop_assert_eq!(t.best().map(|b| id_of(&b)), model_best_on_tip(&f, &tips, tip));
    }
}
