//! Property: the template a prepared [`WorkBase`] gives for a request is exactly the one
//! [`generate`] gives on the same chain, for drawn share trees (forks, donations, shares of
//! different work, more payees than the output cap) and drawn requests (known and new payout
//! scripts, subsidies, share and block targets, timestamps).

use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::{Amount, BlockHash, ScriptBuf};
use proptest::prelude::*;
use sharechain::build::{generate, prepare};
use sharechain::new_tracker;
use sharechain::params::NetworkParams;
use sharechain::share::{CheckedShare, ShareHash};
use sharechain::target::scale;
use sharechain::testkit::{easy_params, mine, p2wpkh, request, REGTEST_BITS};

/// One drawn share: parent (index of an earlier share, or the newest when `None`), payout
/// script tag, target divisor, donation.
#[derive(Debug, Clone)]
struct Drawn {
    parent: Option<usize>,
    script: u32,
    divisor: u64,
    donation: u16,
}

/// One drawn request: parent (index, or none for a first share), payout script tag (tags from
/// 1000 are not in the chain), subsidy, share target divisor, block bits, time offset.
#[derive(Debug, Clone)]
struct Req {
    parent: Option<usize>,
    script: u32,
    subsidy: u64,
    divisor: u64,
    block_bits: u32,
    time: i64,
}

fn drawn() -> impl Strategy<Value = Drawn> {
    (
        prop_oneof![4 => Just(None), 1 => (0usize..200).prop_map(Some)],
        0u32..12,
        prop_oneof![Just(1u64), Just(2), Just(4), Just(16)],
        prop_oneof![3 => Just(0u16), 1 => 0u16..=65535],
    )
        .prop_map(|(parent, script, divisor, donation)| Drawn {
            parent,
            script,
            divisor,
            donation,
        })
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop_oneof![1 => Just(None), 9 => (0usize..200).prop_map(Some)],
        prop_oneof![3 => 0u32..12, 1 => 1000u32..1003],
        prop_oneof![
            Just(50 * 100_000_000u64),
            1u64..10_000,
            0u64..1_000_000_000_000
        ],
        prop_oneof![Just(1u64), Just(2), Just(3), Just(8), Just(64)],
        prop_oneof![Just(REGTEST_BITS), Just(0x2000_ffff), Just(0x1f00_ffff)],
        -100i64..100,
    )
        .prop_map(|(parent, script, subsidy, divisor, block_bits, time)| Req {
            parent,
            script,
            subsidy,
            divisor,
            block_bits,
            time,
        })
}

fn params(chain_length: u32, lookbehind: u32, max_payouts: usize) -> &'static NetworkParams {
    let easy = easy_params(&NetworkParams::REGTEST, chain_length, lookbehind);
    Box::leak(Box::new(NetworkParams {
        max_payouts,
        ..easy.clone()
    }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prepared_template_is_generate(
        chain_length in 3u32..40,
        lookbehind in 2u32..12,
        max_payouts in 1usize..8,
        shares in prop::collection::vec(drawn(), 0..130),
        reqs in prop::collection::vec(req(), 1..12),
    ) {
        let params = params(chain_length, lookbehind, max_payouts);
        let mut t = new_tracker(params);
        let mut held: Vec<CheckedShare> = Vec::new();
        for (i, d) in shares.iter().enumerate() {
            held.retain(|s| t.chain().contains(&s.hash()));
            let parent = match d.parent {
                Some(p) if !held.is_empty() => Some(held[p % held.len()].hash()),
                _ => held.last().map(CheckedShare::hash),
            };
            let ts = 1_700_000_000 + i as u32 * 10;
            let mut r = request(params, parent, p2wpkh(d.script), ts, i as u32);
            r.desired_target = scale(params.max_target(), 1, d.divisor);
            r.donation = d.donation;
            let (c, v) = t.parts();
            // The tracker prunes old shares: building on one whose history is gone fails.
            let Ok(template) = generate(c, v.pplns_mut(), params, &r) else {
                continue;
            };
            let share = mine(params, &template, BlockHash::all_zeros(), ts, 0);
            t.insert(share.clone()).expect("fresh share inserts");
            held.push(share);
        }
        for (i, q) in reqs.iter().enumerate() {
            let parent: Option<ShareHash> = match q.parent {
                Some(p) if !held.is_empty() => Some(held[p % held.len()].hash()),
                _ => None,
            };
            let base_ts = held.last().map_or(1_700_000_000, |s| s.share().share_info.timestamp);
            let ts = (i64::from(base_ts) + q.time) as u32;
            let mut r = request(params, parent, p2wpkh(q.script), ts, 7 + i as u32);
            r.subsidy = Amount::from_sat(q.subsidy);
            r.desired_target = scale(params.max_target(), 1, q.divisor);
            r.block_bits = CompactTarget::from_consensus(q.block_bits);
            let (c, v) = t.parts();
            let expected = generate(c, v.pplns_mut(), params, &r);
            let base = prepare(c, params, parent);
            let got = base.as_ref().map_err(|e| *e).and_then(|b| b.template(&r));
            prop_assert_eq!(&got, &expected);
            // A payout script no share uses (the finder of `/current_payouts`).
            let mut fresh = r.clone();
            fresh.payout_script = ScriptBuf::new();
            let (c, v) = t.parts();
            let expected = generate(c, v.pplns_mut(), params, &fresh);
            let got = base.as_ref().map_err(|e| *e).and_then(|b| b.template(&fresh));
            prop_assert_eq!(got, expected);
        }
    }
}

/// A base prepared on one parent refuses a request on another.
#[test]
fn prepared_base_refuses_another_parent() {
    let params = params(10, 4, 4);
    let mut t = new_tracker(params);
    let r = request(params, None, p2wpkh(1), 1_700_000_000, 0);
    let (c, v) = t.parts();
    let template = generate(c, v.pplns_mut(), params, &r).unwrap();
    let share = mine(params, &template, BlockHash::all_zeros(), 1_700_000_000, 0);
    t.insert(share.clone()).unwrap();
    let base = prepare(t.chain(), params, Some(share.hash())).unwrap();
    assert!(base.template(&r).is_err());
    let on_share = request(params, Some(share.hash()), p2wpkh(2), 1_700_000_010, 1);
    let (c, v) = t.parts();
    assert_eq!(
        base.template(&on_share).unwrap(),
        generate(c, v.pplns_mut(), params, &on_share).unwrap()
    );
}
