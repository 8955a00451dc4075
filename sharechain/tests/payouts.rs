//! The coinbase pays each payout script exactly its PPLNS share: checked against an independent
//! computation of the documented rule, on a real mined chain whose shares have different work.

use std::collections::BTreeMap;

use bitcoin::consensus::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, ScriptBuf, Transaction};
use sharechain::build::generate;
use sharechain::params::NetworkParams;
use sharechain::share::CheckedShare;
use sharechain::target::scale;
use sharechain::testkit::{easy_params, mine, p2wpkh, request};
use sharechain::{new_tracker, ShareTemplate, Tracker};

const SUBSIDY: u64 = 50 * 100_000_000;

/// Mines `n` shares paying `scripts[i % len]` with target `max >> (i % 3)` (so work 1×, 2×, 4×).
fn chain(
    params: &'static NetworkParams,
    n: usize,
    scripts: &[ScriptBuf],
) -> (Tracker, Vec<CheckedShare>) {
    let mut t = new_tracker(params);
    let mut shares: Vec<CheckedShare> = Vec::new();
    for i in 0..n {
        let mut req = request(
            params,
            shares.last().map(|s| s.hash()),
            scripts[i % scripts.len()].clone(),
            1_700_000_000 + i as u32,
            i as u32,
        );
        req.desired_target = scale(params.max_target(), 1, 1 << (i % 3));
        let (c, v) = t.parts();
        let template = generate(c, v.pplns_mut(), params, &req).unwrap();
        let share = mine(
            params,
            &template,
            BlockHash::all_zeros(),
            req.desired_timestamp,
            0,
        );
        t.insert(share.clone()).unwrap();
        shares.push(share);
    }
    (t, shares)
}

fn next(
    t: &mut Tracker,
    params: &'static NetworkParams,
    tip: &CheckedShare,
    finder: ScriptBuf,
    subsidy: u64,
) -> ShareTemplate {
    let mut req = request(params, Some(tip.hash()), finder, 1_800_000_000, 99);
    req.subsidy = Amount::from_sat(subsidy);
    let (c, v) = t.parts();
    generate(c, v.pplns_mut(), params, &req).unwrap()
}

/// Weight per script over the window of a share built on `shares.last()`: the grandparent and
/// older, at most `absheight - 2` and `chain_length - 1` shares.
fn expected_weights(
    params: &NetworkParams,
    shares: &[CheckedShare],
) -> (BTreeMap<ScriptBuf, u128>, u128) {
    let absheight = shares.len() as u32 + 1;
    let count = (absheight - 2).min(params.chain_length - 1) as usize;
    let window = &shares[shares.len() - 1 - count..shares.len() - 1];
    let mut weights = BTreeMap::new();
    let mut total = 0;
    for s in window {
        let w = s.work() * 65535;
        *weights
            .entry(s.share().share_info.share_data.payout_script.clone())
            .or_default() += w;
        total += w;
    }
    (weights, total)
}

fn outputs(template: &ShareTemplate) -> BTreeMap<ScriptBuf, u64> {
    let tx: Transaction = deserialize(&template.coinbase_tx(5)).unwrap();
    assert!(tx.is_coinbase());
    let n = tx.output.len();
    assert_eq!(
        tx.output[0].script_pubkey.as_bytes()[..6],
        [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed],
        "commitment first"
    );
    assert_eq!(
        tx.output[n - 1].script_pubkey.as_bytes()[..2],
        [0x6a, 0x28],
        "ref hash last"
    );
    assert_eq!(tx.output[n - 1].value, Amount::ZERO);
    tx.output[1..n - 1]
        .iter()
        .map(|o| (o.script_pubkey.clone(), o.value.to_sat()))
        .collect()
}

#[test]
fn coinbase_pays_each_script_its_pplns_share() {
    let params = easy_params(&NetworkParams::REGTEST, 100, 10);
    let scripts = [p2wpkh(1), p2wpkh(2), p2wpkh(3)];
    let (mut t, shares) = chain(params, 40, &scripts);
    let finder = p2wpkh(4);
    let template = next(
        &mut t,
        params,
        shares.last().unwrap(),
        finder.clone(),
        SUBSIDY,
    );
    let paid = outputs(&template);
    let (weights, total) = expected_weights(params, &shares);
    assert_eq!(weights.len(), 3);

    let mut sum = 0;
    for (script, w) in &weights {
        let got = paid[script];
        // The documented fixed-point rule…
        let shift = (128 - total.leading_zeros()).saturating_sub(64);
        let factor = ((u128::from(SUBSIDY) * 199) << 64) / (200 * (total >> shift));
        assert_eq!(
            u128::from(got),
            ((w >> shift) * factor) >> 64,
            "fixed-point amount"
        );
        // …is the exact proportional amount to within one satoshi.
        let exact = u128::from(SUBSIDY) * 199 * w / (200 * total);
        assert!(exact - u128::from(got) <= 1, "{got} vs exact {exact}");
        sum += got;
    }
    // The finder gets 0.5% plus rounding; everything adds up to the subsidy.
    assert_eq!(paid[&finder], SUBSIDY - sum);
    assert!(paid[&finder] >= SUBSIDY / 200);
    assert_eq!(paid.values().sum::<u64>(), SUBSIDY);
    // The template's payout list is the coinbase's, largest first.
    let listed: Vec<u64> = template.payouts.iter().map(|p| p.amount.to_sat()).collect();
    assert!(listed.windows(2).all(|w| w[0] >= w[1]));
    assert_eq!(listed.iter().sum::<u64>(), SUBSIDY);
}

#[test]
fn a_finder_already_in_the_window_gets_both_parts_in_one_output() {
    let params = easy_params(&NetworkParams::REGTEST, 100, 10);
    let scripts = [p2wpkh(1), p2wpkh(2)];
    let (mut t, shares) = chain(params, 12, &scripts);
    let template = next(
        &mut t,
        params,
        shares.last().unwrap(),
        scripts[0].clone(),
        SUBSIDY,
    );
    let paid = outputs(&template);
    assert_eq!(paid.len(), 2);
    assert_eq!(paid.values().sum::<u64>(), SUBSIDY);
}

#[test]
fn payees_beyond_the_output_cap_and_dust_go_to_the_finder() {
    let base = easy_params(&NetworkParams::REGTEST, 100, 10);
    let params: &'static NetworkParams = Box::leak(Box::new(NetworkParams {
        max_payouts: 3,
        ..base.clone()
    }));
    let scripts: Vec<_> = (1..=5).map(p2wpkh).collect();
    let (mut t, shares) = chain(params, 30, &scripts);
    let finder = p2wpkh(9);
    let template = next(
        &mut t,
        params,
        shares.last().unwrap(),
        finder.clone(),
        SUBSIDY,
    );
    let paid = outputs(&template);
    assert_eq!(paid.len(), 3, "two largest payees and the finder");
    assert_eq!(paid.values().sum::<u64>(), SUBSIDY);
    let (weights, _) = expected_weights(params, &shares);
    let mut by_weight: Vec<_> = weights.iter().collect();
    by_weight.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (script, _) in &by_weight[..2] {
        assert!(paid.contains_key(*script), "a largest payee is kept");
    }

    // A subsidy so small that every payee's share is dust: only the finder is paid.
    let template = next(&mut t, params, shares.last().unwrap(), finder.clone(), 1000);
    let paid = outputs(&template);
    assert_eq!(paid.into_iter().collect::<Vec<_>>(), vec![(finder, 1000)]);
}

#[test]
fn the_first_share_pays_its_finder_everything() {
    let params = easy_params(&NetworkParams::REGTEST, 100, 10);
    let mut t = new_tracker(params);
    let req = request(params, None, p2wpkh(1), 1_700_000_000, 0);
    let (c, v) = t.parts();
    let template = generate(c, v.pplns_mut(), params, &req).unwrap();
    assert_eq!(
        outputs(&template).into_iter().collect::<Vec<_>>(),
        vec![(p2wpkh(1), SUBSIDY)]
    );
    let _ = t.best();
}

#[test]
fn finders_of_many_addresses_do_not_pile_up_and_payouts_stay_the_same() {
    let params = easy_params(&NetworkParams::REGTEST, 100, 10);
    let scripts = [p2wpkh(1), p2wpkh(2), p2wpkh(3)];
    let (mut t, shares) = chain(params, 30, &scripts);
    let tip = shares.last().unwrap();
    let before = next(&mut t, params, tip, p2wpkh(7), SUBSIDY);
    // Work for 100,000 different addresses, as miners authorizing with fresh addresses ask.
    let mut most = 0;
    for tag in 1_000..101_000 {
        next(&mut t, params, tip, p2wpkh(tag), SUBSIDY);
        most = most.max(t.parts().1.pplns_mut().interned());
    }
    assert!(most <= (1 << 16) + 1, "interned scripts reached {most}");
    assert!(t.parts().1.pplns_mut().interned() < 100_000);
    // The same job as before the flood, and as a fresh tracker builds it.
    let after = next(&mut t, params, tip, p2wpkh(7), SUBSIDY);
    assert_eq!(after.payouts, before.payouts);
    let (mut fresh, _) = chain(params, 30, &scripts);
    assert_eq!(
        next(&mut fresh, params, tip, p2wpkh(7), SUBSIDY).payouts,
        before.payouts
    );
}
