//! Table-driven tests of the share tracker on toy shares: forks, reorgs, missing parents,
//! invalid descendants, history verification, stale-tip penalties and pruning.

mod common;

use common::{h, id_of, ids, toy, tracker, Toy};
use sharechain::tracker::InsertError;

/// One scenario: shares inserted in order (`Insert`) or the external tip changed (`Tip`), and
/// what the tracker must hold afterwards.
struct Case {
    name: &'static str,
    chain_length: u32,
    ops: Vec<Op>,
    best: Option<u32>,
    verified: Vec<u32>,
    /// Held but unverified (history or waiting).
    unverified: Vec<u32>,
    missing: Vec<u32>,
    /// Rejected as invalid by verification (directly or as descendants), in any order.
    invalid: Vec<u32>,
    /// The reorg depth of the last best change.
    last_reorg: u32,
}

enum Op {
    Insert(Toy),
    Tip(u8),
}

fn share(id: u32, prev: Option<u32>, work: u128) -> Op {
    Op::Insert(Toy {
        work,
        ..toy(id, prev)
    })
}

fn bad(id: u32, prev: Option<u32>) -> Op {
    Op::Insert(Toy {
        valid: false,
        ..toy(id, prev)
    })
}

fn on_tip(id: u32, prev: Option<u32>, work: u128, tip: u8) -> Op {
    Op::Insert(Toy {
        work,
        tip,
        ..toy(id, prev)
    })
}

fn cases() -> Vec<Case> {
    vec![
        // 1 - 2 - 3 - 4
        Case {
            name: "a straight chain verifies in order",
            chain_length: 10,
            ops: vec![
                share(1, None, 1),
                share(2, Some(1), 1),
                share(3, Some(2), 1),
                share(4, Some(3), 1),
            ],
            best: Some(4),
            verified: vec![1, 2, 3, 4],
            unverified: vec![],
            missing: vec![],
            invalid: vec![],
            last_reorg: 0,
        },
        // 1 - 2 - 3
        //      \
        //       4 - 5        (4 and 5 arrive later and carry more work)
        Case {
            name: "a heavier fork takes over with a reorg of one",
            chain_length: 10,
            ops: vec![
                share(1, None, 1),
                share(2, Some(1), 1),
                share(3, Some(2), 1),
                share(4, Some(2), 1),
                share(5, Some(4), 1),
            ],
            best: Some(5),
            verified: vec![1, 2, 3, 4, 5],
            unverified: vec![],
            missing: vec![],
            invalid: vec![],
            last_reorg: 1,
        },
        // 1 - 2 - 3
        //      \
        //       4            (3 and 4 have equal work: the lower hash, 3's, wins)
        Case {
            name: "equal work: the lower hash wins",
            chain_length: 10,
            ops: vec![
                share(1, None, 1),
                share(2, Some(1), 1),
                share(3, Some(2), 5),
                share(4, Some(2), 5),
            ],
            best: Some(3),
            verified: vec![1, 2, 3, 4],
            unverified: vec![],
            missing: vec![],
            invalid: vec![],
            last_reorg: 0,
        },
        // 1 - 2 - 3
        //      \
        //       4            (one share of more work beats two of less)
        Case {
            name: "work counts, not length",
            chain_length: 10,
            ops: vec![
                share(1, None, 1),
                share(2, Some(1), 1),
                share(3, Some(2), 1),
                share(4, Some(2), 3),
            ],
            best: Some(4),
            verified: vec![1, 2, 3, 4],
            unverified: vec![],
            missing: vec![],
            invalid: vec![],
            last_reorg: 1,
        },
        // (3) arrives, then (2), then (1): each waits for its parent, then all verify.
        Case {
            name: "children arriving before parents wait, then verify",
            chain_length: 10,
            ops: vec![
                share(3, Some(2), 1),
                share(2, Some(1), 1),
                share(1, None, 1),
            ],
            best: Some(3),
            verified: vec![1, 2, 3],
            unverified: vec![],
            missing: vec![],
            invalid: vec![],
            last_reorg: 0,
        },
        // 2 - 3              (1 never arrives: 1 is missing, nothing verifiable yet)
        Case {
            name: "a missing parent is reported",
            chain_length: 10,
            ops: vec![share(3, Some(2), 1), share(2, Some(1), 1)],
            best: None,
            verified: vec![],
            unverified: vec![2, 3],
            missing: vec![1],
            invalid: vec![],
            last_reorg: 0,
        },
        // 1 - 2 - 3x - 4 - 5   (3 is invalid: 3, 4 and 5 go)
        Case {
            name: "an invalid share takes its descendants with it",
            chain_length: 10,
            ops: vec![
                share(1, None, 1),
                share(2, Some(1), 1),
                share(5, Some(4), 1),
                share(4, Some(3), 1),
                bad(3, Some(2)),
            ],
            best: Some(2),
            verified: vec![1, 2],
            unverified: vec![],
            missing: vec![],
            invalid: vec![3, 4, 5],
            last_reorg: 0,
        },
        // (9) - 10 - 11 - 12 - 13 - 14     (9 unknown; chain_length 3: 10..12 are history,
        //                                   13 is the first share with 3 ancestors below it)
        Case {
            name: "history below the chain length lets the rest verify",
            chain_length: 3,
            ops: vec![
                share(10, Some(9), 1),
                share(11, Some(10), 1),
                share(12, Some(11), 1),
                share(13, Some(12), 1),
                share(14, Some(13), 1),
            ],
            best: Some(14),
            verified: vec![13, 14],
            unverified: vec![10, 11, 12],
            missing: vec![9],
            invalid: vec![],
            last_reorg: 0,
        },
        // 1 - 2 - 3 (tip A)
        //      \
        //       4 (tip B, more work)      then the external tip becomes A:
        //       4 counts as its parent 2, so 3 wins.
        Case {
            name: "a head on a stale external tip counts as its parent",
            chain_length: 10,
            ops: vec![
                on_tip(1, None, 1, 0),
                on_tip(2, Some(1), 1, 0),
                on_tip(3, Some(2), 1, 0xA),
                on_tip(4, Some(2), 2, 0xB),
                Op::Tip(0xA),
            ],
            best: Some(3),
            verified: vec![1, 2, 3, 4],
            unverified: vec![],
            missing: vec![],
            invalid: vec![],
            last_reorg: 1,
        },
        // 1 - 2 - … - 12       (chain_length 2: keep 4 shares below the best)
        Case {
            name: "pruning keeps twice the chain length",
            chain_length: 2,
            ops: (1..=12)
                .map(|i| share(i, (i > 1).then(|| i - 1), 1))
                .collect(),
            best: Some(12),
            verified: vec![8, 9, 10, 11, 12],
            unverified: vec![],
            missing: vec![],
            invalid: vec![],
            last_reorg: 0,
        },
        // 1 - 2 - 3 - 4 - 5 - 6 - … - 12
        //                  \
        //                   20     (chain_length 4: 20 fell more than 4 behind and is pruned;
        //                           shares more than 8 below the best are pruned too)
        Case {
            name: "a fork that fell behind is pruned",
            chain_length: 4,
            ops: (1..=5)
                .map(|i| share(i, (i > 1).then(|| i - 1), 1))
                .chain([share(20, Some(5), 1)])
                .chain((6..=12).map(|i| share(i, Some(i - 1), 1)))
                .collect(),
            best: Some(12),
            verified: (4..=12).collect(),
            unverified: vec![],
            missing: vec![],
            invalid: vec![],
            last_reorg: 0,
        },
    ]
}

#[test]
fn tracker_table() {
    for case in cases() {
        let mut t = tracker(case.chain_length);
        let mut invalid = Vec::new();
        let mut last_reorg = 0;
        for op in case.ops {
            let changes = match op {
                Op::Insert(s) => t.insert(s).unwrap_or_else(|e| panic!("{}: {e}", case.name)),
                Op::Tip(tip) => t.set_tip(Some(tip)),
            };
            invalid.extend(changes.invalid.iter().map(|r| id_of(&r.hash)));
            if let Some(b) = changes.best {
                last_reorg = b.reorg_depth;
            }
        }
        let name = case.name;
        assert_eq!(t.best().map(|b| id_of(&b)), case.best, "{name}: best");
        let mut verified: Vec<u32> = Vec::new();
        let mut unverified: Vec<u32> = Vec::new();
        for id in 0..100u32 {
            if t.chain().contains(&h(id)) {
                if t.chain().is_verified(&h(id)) {
                    verified.push(id);
                } else {
                    unverified.push(id);
                }
            }
        }
        assert_eq!(verified, case.verified, "{name}: verified");
        assert_eq!(unverified, case.unverified, "{name}: unverified");
        assert_eq!(
            ids(&t.missing_parents()),
            case.missing,
            "{name}: missing parents"
        );
        invalid.sort_unstable();
        assert_eq!(invalid, case.invalid, "{name}: invalid");
        assert_eq!(last_reorg, case.last_reorg, "{name}: reorg depth");
    }
}

#[test]
fn duplicates_and_known_invalid_shares_are_refused() {
    let mut t = tracker(10);
    t.insert(toy(1, None)).unwrap();
    assert_eq!(t.insert(toy(1, None)), Err(InsertError::Duplicate(h(1))));
    let changes = t
        .insert(Toy {
            valid: false,
            ..toy(2, Some(1))
        })
        .unwrap();
    assert_eq!(changes.invalid.len(), 1);
    assert!(changes.invalid[0].direct);
    assert_eq!(
        t.insert(Toy {
            valid: false,
            ..toy(2, Some(1))
        }),
        Err(InsertError::KnownInvalid(h(2)))
    );
    assert_eq!(
        t.insert(toy(3, Some(2))),
        Err(InsertError::InvalidParent {
            share: h(3),
            parent: h(2),
            dropped: vec![]
        })
    );
    // Its own descendants are refused without verification too.
    assert_eq!(
        t.insert(toy(4, Some(3))),
        Err(InsertError::InvalidParent {
            share: h(4),
            parent: h(3),
            dropped: vec![]
        })
    );
    // A share waiting for a parent that turns out to build on an invalid share goes too
    // (found by the model test: it used to stay held, unverified, forever).
    t.insert(toy(11, Some(10))).unwrap();
    t.insert(toy(12, Some(11))).unwrap();
    match t.insert(toy(10, Some(4))) {
        Err(InsertError::InvalidParent { share, dropped, .. }) => {
            assert_eq!(share, h(10));
            assert_eq!(common::ids(&dropped), vec![11, 12]);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!t.chain().contains(&h(11)) && !t.chain().contains(&h(12)));
    assert!(t.missing_parents().is_empty());
    assert_eq!(t.best(), Some(h(1)));
}

#[test]
fn insert_reports_what_changed() {
    let mut t = tracker(10);
    // Child first: its parent is requested.
    let c = t.insert(toy(2, Some(1))).unwrap();
    assert_eq!(c.missing_parents, vec![h(1)]);
    assert!(c.verified.is_empty() && c.best.is_none());
    // The parent arrives: both verify, parent first, and 2 becomes best.
    let c = t.insert(toy(1, None)).unwrap();
    assert_eq!(c.verified, vec![h(1), h(2)]);
    let best = c.best.expect("best changed");
    assert_eq!(
        (best.old, best.new, best.reorg_depth),
        (None, Some(h(2)), 0)
    );
    assert!(t.missing_parents().is_empty());
}

#[test]
fn verification_runs_once_per_share_in_chain_order() {
    let mut t = tracker(10);
    for id in [5u32, 4, 3, 2] {
        t.insert(toy(id, Some(id - 1))).unwrap();
    }
    t.insert(toy(1, None)).unwrap();
    assert_eq!(t.verifier().verified, vec![1, 2, 3, 4, 5]);
}

#[test]
fn trees_that_stop_growing_away_from_the_best_share_are_dropped() {
    let mut t = tracker(10);
    t.insert(toy(1, None)).unwrap();
    // Detached: a share whose parent never comes, and a low-work chain of its own.
    t.insert(toy(1001, Some(1000))).unwrap();
    t.insert(Toy {
        work: 0,
        ..toy(2001, None)
    })
    .unwrap();
    // Detached but still growing, as a sync in progress does (one share every few).
    t.insert(toy(3001, Some(3000))).unwrap();
    let mut pruned = Vec::new();
    let mut growing = 3001;
    for id in 2..200u32 {
        let c = t.insert(toy(id, Some(id - 1))).unwrap();
        pruned.extend(ids(&c.pruned));
        if id % 5 == 0 {
            growing += 1;
            let c = t.insert(toy(growing, Some(growing - 1))).unwrap();
            pruned.extend(ids(&c.pruned));
        }
    }
    for gone in [1001, 2001] {
        assert!(!t.chain().contains(&h(gone)), "{gone} still held");
        assert!(pruned.contains(&gone), "{gone} not reported as pruned");
    }
    assert!(
        (3001..=growing).all(|id| t.chain().contains(&h(id))),
        "the growing tree stays"
    );
    assert_eq!(
        ids(&t.missing_parents()),
        vec![3000],
        "only the growing tree waits"
    );
    assert_eq!(t.best().map(|b| id_of(&b)), Some(199));
}
