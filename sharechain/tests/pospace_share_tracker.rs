//! Table-driven tests of PoSpace share chains in the generic tracker: forks, duplicate proofs,
//! shares on signage points that become known later, farmer-chosen difficulties, stale signage
//! points, timestamps, and the retarget. Shares carry real chiapos proofs (k18) and real
//! signatures; chains are built on a node that knows every signage point, then fed to the
//! tracker under test.

use std::collections::HashMap;

use sharechain::pospace_share::testkit::ProofBook;
use sharechain::pospace_share::{
    new_pospace_tracker, required_difficulty, ChiaNetwork, PoSpaceShare, PoSpaceTracker, ShareError,
};
use sharechain::tracker::InsertError;
use sharechain::ShareHash;

const PROOFS: &str = include_str!("vectors/chia/pospace_share_proofs_k18.csv");

fn network() -> &'static ChiaNetwork {
    static NET: ChiaNetwork = ChiaNetwork {
        window: 8,
        retarget_lookbehind: 4,
        ..ChiaNetwork::REGTEST
    };
    &NET
}

fn book() -> &'static ProofBook {
    static BOOK: std::sync::OnceLock<ProofBook> = std::sync::OnceLock::new();
    BOOK.get_or_init(|| ProofBook::parse(PROOFS))
}

/// One share of a scenario: `id` on `parent`, answering proof `proof` of the book.
#[derive(Clone, Copy)]
struct Spec {
    id: u32,
    parent: Option<u32>,
    proof: usize,
    /// Difficulty added to the required one (a farmer's own choice when not 0).
    extra_difficulty: u64,
    /// Seconds after the parent's timestamp (negative: before it).
    after_parent: i64,
}

fn s(id: u32, parent: Option<u32>, proof: usize) -> Spec {
    Spec {
        id,
        parent,
        proof,
        extra_difficulty: 0,
        after_parent: 2,
    }
}

enum Op {
    Insert(u32),
    /// The node learns the signage point of a proof, then retries pending shares.
    Learn(usize),
}

enum Expect {
    Verified,
    Pending,
    /// Held, waiting for an ancestor.
    Unverified,
    Invalid(fn(&ShareError) -> bool),
    /// Refused on insertion: it builds on a share already found invalid.
    OnInvalidParent,
}

struct Case {
    name: &'static str,
    shares: Vec<Spec>,
    /// Proofs whose signage point the tracker under test does not know at first.
    unknown: Vec<usize>,
    ops: Vec<Op>,
    best: Option<u32>,
    expect: Vec<(u32, Expect)>,
}

/// Builds every share of a scenario, parents first, each with the difficulty its chain requires.
fn build(shares: &[Spec]) -> HashMap<u32, PoSpaceShare> {
    let net = network();
    let mut builder = new_pospace_tracker(net);
    for i in 0..book().proofs.len().min(400) {
        builder
            .verifier_mut()
            .signage_points_mut()
            .insert(book().signage_point(i));
    }
    let mut out: HashMap<u32, PoSpaceShare> = HashMap::new();
    for spec in shares {
        let parent = spec.parent.map(|p| out[&p].clone());
        let prev = parent.as_ref().map(|p| p.hash());
        let ts = parent
            .as_ref()
            .map_or(1_700_000_000, |p| p.content().timestamp);
        let ts = ts.checked_add_signed(spec.after_parent).unwrap();
        let difficulty =
            required_difficulty(net, builder.chain(), prev.as_ref()) + spec.extra_difficulty;
        let payout = [spec.id as u8; 32];
        let share = book().share(
            &book().content(spec.proof, prev, difficulty, ts, payout),
            net,
        );
        // Only shares the chain accepts go into the builder (a refused one can still be sent).
        let _ = builder.insert(share.clone());
        out.insert(spec.id, share);
    }
    out
}

fn run(case: &Case) {
    let shares = build(&case.shares);
    let id_of: HashMap<ShareHash, u32> = shares.iter().map(|(id, s)| (s.hash(), *id)).collect();
    let mut tracker: PoSpaceTracker = new_pospace_tracker(network());
    for spec in &case.shares {
        if !case.unknown.contains(&spec.proof) {
            tracker
                .verifier_mut()
                .signage_points_mut()
                .insert(book().signage_point(spec.proof));
        }
    }
    let mut invalid: HashMap<u32, ShareError> = HashMap::new();
    let mut on_invalid_parent = Vec::new();
    for op in &case.ops {
        let changes = match op {
            Op::Insert(id) => match tracker.insert(shares[id].clone()) {
                Ok(changes) => changes,
                Err(InsertError::InvalidParent { .. }) => {
                    on_invalid_parent.push(*id);
                    continue;
                }
                Err(e) => panic!("{}: {e}", case.name),
            },
            Op::Learn(proof) => {
                tracker
                    .verifier_mut()
                    .signage_points_mut()
                    .insert(book().signage_point(*proof));
                tracker.retry_pending()
            }
        };
        for r in changes.invalid {
            invalid.insert(id_of[&r.hash], r.error);
        }
    }
    assert_eq!(
        tracker.best().map(|b| id_of[&b]),
        case.best,
        "{}: best",
        case.name
    );
    let pending = tracker.pending();
    for (id, expect) in &case.expect {
        let h = shares[id].hash();
        let what = format!("{}: share {id}", case.name);
        match expect {
            Expect::Verified => assert!(tracker.chain().is_verified(&h), "{what} verified"),
            Expect::Pending => {
                assert!(
                    pending.contains(&h) && !tracker.chain().is_verified(&h),
                    "{what} pending"
                )
            }
            Expect::Unverified => assert!(
                tracker.chain().contains(&h)
                    && !tracker.chain().is_verified(&h)
                    && !pending.contains(&h),
                "{what} waiting"
            ),
            Expect::Invalid(reason) => {
                let got = invalid.get(id).unwrap_or_else(|| panic!("{what} invalid"));
                assert!(reason(got), "{what}: {got:?}");
                assert!(!tracker.chain().contains(&h));
            }
            Expect::OnInvalidParent => assert!(on_invalid_parent.contains(id), "{what} refused"),
        }
    }
}

fn inserts(ids: &[u32]) -> Vec<Op> {
    ids.iter().map(|&i| Op::Insert(i)).collect()
}

#[test]
fn pospace_chains() {
    use Expect::*;
    let cases = vec![
        // 1 - 2 - 3 - 4
        Case {
            name: "a straight chain verifies",
            shares: vec![
                s(1, None, 0),
                s(2, Some(1), 1),
                s(3, Some(2), 2),
                s(4, Some(3), 3),
            ],
            unknown: vec![],
            ops: inserts(&[1, 2, 3, 4]),
            best: Some(4),
            expect: vec![(1, Verified), (2, Verified), (3, Verified), (4, Verified)],
        },
        // 1 - 2 - 3
        //      \
        //       4 - 5        (the longer fork has more difficulty and takes over)
        Case {
            name: "a heavier fork takes over",
            shares: vec![
                s(1, None, 0),
                s(2, Some(1), 1),
                s(3, Some(2), 2),
                s(4, Some(2), 3),
                s(5, Some(4), 4),
            ],
            unknown: vec![],
            ops: inserts(&[1, 2, 3, 4, 5]),
            best: Some(5),
            expect: vec![(3, Verified), (4, Verified), (5, Verified)],
        },
        // 1 - 2 - 3          (3 answers the same signage point with the same plot as 2)
        Case {
            name: "a duplicate proof in the window is refused",
            shares: vec![s(1, None, 0), s(2, Some(1), 1), s(3, Some(2), 1)],
            unknown: vec![],
            ops: inserts(&[1, 2, 3]),
            best: Some(2),
            expect: vec![
                (2, Verified),
                (3, Invalid(|e| matches!(e, ShareError::DuplicateProof(_)))),
            ],
        },
        // 1 - 2
        //  \
        //   3                (the same proof on two forks: each chain counts it once; equal
        //                    work, so the lower hash, 3's, is best)
        Case {
            name: "the same proof on sibling forks is fine",
            shares: vec![s(1, None, 0), s(2, Some(1), 1), s(3, Some(1), 1)],
            unknown: vec![],
            ops: inserts(&[1, 2, 3]),
            best: Some(3),
            expect: vec![(2, Verified), (3, Verified)],
        },
        // 1 - 2 - 3 - 4     (2's signage point is unknown: 2 pending, 3 and 4 wait;
        //                    once it is known, all verify)
        Case {
            name: "a share on an unknown signage point is pending until it is known",
            shares: vec![
                s(1, None, 0),
                s(2, Some(1), 1),
                s(3, Some(2), 2),
                s(4, Some(3), 3),
            ],
            unknown: vec![1],
            ops: vec![
                Op::Insert(1),
                Op::Insert(2),
                Op::Insert(3),
                Op::Insert(4),
                Op::Learn(1),
            ],
            best: Some(4),
            expect: vec![(2, Verified), (3, Verified), (4, Verified)],
        },
        // Same chain, never learnt.
        Case {
            name: "pending shares hold their descendants back",
            shares: vec![s(1, None, 0), s(2, Some(1), 1), s(3, Some(2), 2)],
            unknown: vec![1],
            ops: inserts(&[1, 2, 3]),
            best: Some(1),
            expect: vec![(1, Verified), (2, Pending), (3, Unverified)],
        },
        // 1 - 2 - 3          (2 raised its own difficulty; 3 builds on it)
        Case {
            name: "a farmer-chosen difficulty is refused",
            shares: vec![
                s(1, None, 0),
                Spec {
                    extra_difficulty: 3,
                    ..s(2, Some(1), 1)
                },
                s(3, Some(2), 2),
            ],
            unknown: vec![],
            ops: inserts(&[1, 2, 3]),
            best: Some(1),
            expect: vec![
                (
                    2,
                    Invalid(|e| {
                        matches!(
                            e,
                            ShareError::FarmerDifficulty {
                                got: 4,
                                required: 1
                            }
                        )
                    }),
                ),
                (3, OnInvalidParent),
            ],
        },
        // 1 - 2              (2 answers a signage point far older than 1's)
        Case {
            name: "a signage point too far behind the parent's is refused",
            shares: vec![s(1, None, 100), s(2, Some(1), 0)],
            unknown: vec![],
            ops: inserts(&[1, 2]),
            best: Some(1),
            expect: vec![(
                2,
                Invalid(|e| matches!(e, ShareError::StaleSignagePoint { .. })),
            )],
        },
        // 1 - 2              (2 is stamped before 1)
        Case {
            name: "a timestamp before the parent's is refused",
            shares: vec![
                s(1, None, 0),
                Spec {
                    after_parent: -1,
                    ..s(2, Some(1), 1)
                },
            ],
            unknown: vec![],
            ops: inserts(&[1, 2]),
            best: Some(1),
            expect: vec![(2, Invalid(|e| matches!(e, ShareError::Timestamp { .. })))],
        },
    ];
    for case in &cases {
        run(case);
    }
}

/// Shares found faster than the share period raise the difficulty, slower ones lower it, and a
/// long chain of them verifies (its window slides past the duplicate index's history).
#[test]
fn retarget_follows_the_share_rate() {
    let fast: Vec<Spec> = (0..30u32)
        .map(|i| Spec {
            after_parent: 0,
            parent: (i > 0).then_some(i),
            ..s(i + 1, None, i as usize)
        })
        .collect();
    let shares = build(&fast);
    let diffs: Vec<u64> = (1..=30).map(|i| shares[&i].content().difficulty).collect();
    assert_eq!(diffs[0], 1);
    assert!(diffs.windows(2).all(|w| w[1] >= w[0]), "{diffs:?}");
    assert!(diffs[29] > 5, "{diffs:?}");
    let mut tracker = new_pospace_tracker(network());
    for i in 0..30 {
        tracker
            .verifier_mut()
            .signage_points_mut()
            .insert(book().signage_point(i));
    }
    for i in 1..=30 {
        let c = tracker.insert(shares[&i].clone()).unwrap();
        assert_eq!(c.invalid, vec![], "share {i}");
    }
    assert_eq!(tracker.best(), Some(shares[&30].hash()));

    let slow: Vec<Spec> = (0..10u32)
        .map(|i| Spec {
            after_parent: 60,
            parent: (i > 0).then_some(i),
            ..s(i + 1, None, i as usize)
        })
        .collect();
    let shares = build(&slow);
    assert!(
        (1..=10).all(|i| shares[&i].content().difficulty == 1),
        "never below the minimum"
    );
}
