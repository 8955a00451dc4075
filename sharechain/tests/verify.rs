//! Verification of real shares on a real chain: what the builder mines, the verifier accepts;
//! each kind of tampering is rejected with its specific reason.

use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash};
use sharechain::build::generate;
use sharechain::gentx::CoinbasePrefix;
use sharechain::params::NetworkParams;
use sharechain::share::CheckedShare;
use sharechain::testkit::{build_chain, easy_params, mine, p2wpkh, request};
use sharechain::tracker::InsertError;
use sharechain::{new_tracker, VerifyError};

fn params() -> &'static NetworkParams {
    easy_params(&NetworkParams::REGTEST, 100, 10)
}

#[test]
fn a_mined_chain_verifies_share_by_share() {
    let params = params();
    let scripts: Vec<_> = (0..3).map(p2wpkh).collect();
    let (tracker, shares) = build_chain(params, 230, &scripts);
    let held: Vec<_> = shares
        .iter()
        .filter(|s| tracker.chain().contains(&s.hash()))
        .collect();
    assert_eq!(
        held.len(),
        2 * 100 + 1,
        "pruned to two chain lengths plus the best"
    );
    for s in held {
        assert!(
            tracker.chain().is_verified(&s.hash()),
            "share {} verified",
            s.share().share_info.absheight
        );
    }
    assert_eq!(tracker.best(), Some(shares.last().unwrap().hash()));
    // far_share_hash points 100 shares back.
    let last = shares.last().unwrap();
    assert_eq!(
        last.share().share_info.far_share_hash,
        Some(shares[shares.len() - 101].hash())
    );
}

/// Mines a share on `parent` after letting `tamper` change the template.
fn tampered(
    tracker: &mut sharechain::Tracker,
    params: &'static NetworkParams,
    parent: sharechain::ShareHash,
    tamper: impl FnOnce(&mut sharechain::ShareTemplate),
) -> CheckedShare {
    let ts = 1_800_000_000;
    let req = request(params, Some(parent), p2wpkh(9), ts, 77);
    let (chain, verifier) = tracker.parts();
    let mut template = generate(chain, verifier.pplns_mut(), params, &req).unwrap();
    tamper(&mut template);
    template.ref_hash = sharechain::share::ref_hash(
        &params.identifier,
        template.version,
        &template.share_info,
        &Default::default(),
    );
    mine(
        params,
        &template,
        BlockHash::all_zeros(),
        template.share_info.timestamp,
        5,
    )
}

#[test]
fn tampered_shares_are_rejected_with_their_reason() {
    let params = params();
    let scripts: Vec<_> = (0..4).map(p2wpkh).collect();
    type Tamper = Box<dyn FnOnce(&mut sharechain::ShareTemplate)>;
    type Case = (&'static str, Tamper, fn(&VerifyError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "a payout moved from one miner to another",
            Box::new(|t| {
                t.payouts[0].amount -= Amount::from_sat(1);
                t.payouts[1].amount += Amount::from_sat(1);
                t.coinbase = CoinbasePrefix::build(
                    &t.share_info.share_data.coinbase,
                    &t.share_info.segwit_data.wtxid_merkle_root,
                    &t.payouts,
                );
            }),
            |e| matches!(e, VerifyError::Coinbase),
        ),
        (
            "a max_bits other than the retarget gives",
            Box::new(|t| {
                let raw = t.share_info.max_bits.to_consensus();
                t.share_info.max_bits = bitcoin::CompactTarget::from_consensus(raw - 1);
                t.share_info.bits = t.share_info.max_bits;
            }),
            |e| matches!(e, VerifyError::MaxBits { .. }),
        ),
        (
            "a wrong absheight",
            Box::new(|t| t.share_info.absheight += 1),
            |e| matches!(e, VerifyError::AbsHeight { .. }),
        ),
        (
            "a wrong abswork",
            Box::new(|t| t.share_info.abswork += 1),
            |e| matches!(e, VerifyError::AbsWork { .. }),
        ),
        (
            "a timestamp before the parent's",
            Box::new(|t| t.share_info.timestamp = 1),
            |e| matches!(e, VerifyError::Timestamp { .. }),
        ),
        (
            "a wrong far share",
            Box::new(|t| t.share_info.far_share_hash = None),
            |e| matches!(e, VerifyError::FarShare),
        ),
    ];
    for (name, tamper, expected) in cases {
        let (mut tracker, shares) = build_chain(params, 120, &scripts);
        let parent = shares.last().unwrap().hash();
        let bad = tampered(&mut tracker, params, parent, tamper);
        let bad_hash = bad.hash();
        let changes = tracker.insert(bad).unwrap();
        assert_eq!(changes.invalid.len(), 1, "{name}: {changes:?}");
        assert!(changes.invalid[0].direct && changes.invalid[0].hash == bad_hash);
        assert!(
            expected(&changes.invalid[0].error),
            "{name}: got {}",
            changes.invalid[0].error
        );
        assert_eq!(tracker.best(), Some(parent), "{name}: best unchanged");
        // Sending it again is refused without work.
        let again = tampered(&mut tracker, params, parent, |_| {});
        assert!(
            tracker.insert(again).is_ok(),
            "{name}: an honest sibling still inserts"
        );
    }
}

#[test]
fn a_share_on_an_invalid_share_is_refused() {
    let params = params();
    let scripts: Vec<_> = (0..2).map(p2wpkh).collect();
    let (mut tracker, shares) = build_chain(params, 60, &scripts);
    let parent = shares.last().unwrap().hash();
    let bad = tampered(&mut tracker, params, parent, |t| {
        t.share_info.absheight += 5
    });
    let bad_hash = bad.hash();
    assert_eq!(tracker.insert(bad).unwrap().invalid.len(), 1);
    assert!(tracker.is_known_invalid(&bad_hash));
    // A child of the invalid share is refused before any verification work.
    let child = tampered(&mut tracker, params, parent, |t| {
        t.share_info.share_data.previous_share_hash = Some(bad_hash);
    });
    assert!(matches!(
        tracker.insert(child),
        Err(InsertError::InvalidParent { parent, .. }) if parent == bad_hash
    ));
}

#[test]
fn new_tracker_starts_empty() {
    let t = new_tracker(&NetworkParams::MAINNET);
    assert!(t.best().is_none() && t.chain().is_empty());
}

/// Mines `votes.len()` version-1 shares whose `desired_version` is `votes[i]`, then one share of
/// `version` on top; returns how the tracker took the last one.
fn vote_then_switch(
    votes: &[u64],
    version: u64,
) -> Vec<sharechain::tracker::Rejected<VerifyError>> {
    let base = easy_params(&NetworkParams::REGTEST, 100, 10);
    let params: &'static NetworkParams = Box::leak(Box::new(NetworkParams {
        share_versions: &[1, 2],
        version_switch_percent: 60,
        ..base.clone()
    }));
    let mut tracker = new_tracker(params);
    let mut parent = None;
    for (i, &vote) in votes.iter().enumerate() {
        let mut req = request(
            params,
            parent,
            p2wpkh(i as u32 % 3),
            1_700_000_000 + i as u32,
            i as u32,
        );
        req.version = 1;
        req.desired_version = vote;
        let (c, v) = tracker.parts();
        let t = generate(c, v.pplns_mut(), params, &req).unwrap();
        let share = mine(params, &t, BlockHash::all_zeros(), req.desired_timestamp, 0);
        parent = Some(share.hash());
        assert!(tracker.insert(share).unwrap().invalid.is_empty());
    }
    let mut req = request(params, parent, p2wpkh(7), 1_700_001_000, 99);
    req.version = version;
    req.desired_version = version;
    let (c, v) = tracker.parts();
    let t = generate(c, v.pplns_mut(), params, &req).unwrap();
    let share = mine(params, &t, BlockHash::all_zeros(), req.desired_timestamp, 0);
    tracker.insert(share).unwrap().invalid
}

#[test]
fn a_version_switch_needs_a_supermajority_of_recent_work() {
    // 80% of recent shares vote for version 2 (votes weigh by work): the switch is valid.
    let votes: Vec<u64> = (0..60).map(|i| if i % 10 < 8 { 2 } else { 1 }).collect();
    let invalid = vote_then_switch(&votes, 2);
    assert!(
        invalid.is_empty(),
        "{:?}",
        invalid.first().map(|r| &r.error)
    );
    // 50%: not enough.
    let votes: Vec<u64> = (0..60).map(|i| if i % 2 == 0 { 2 } else { 1 }).collect();
    let invalid = vote_then_switch(&votes, 2);
    assert!(
        matches!(invalid[0].error, VerifyError::VersionSwitch { version: 2, needed: 60, got } if got < 60),
        "{:?}",
        invalid[0].error
    );
    // Keeping the parent's version needs no vote.
    assert!(vote_then_switch(&[1; 30], 1).is_empty());
}
