//! Share verification benchmark: an 8640-share chain (mainnet's PPLNS window) with 200 distinct
//! payout scripts.
//!
//! - `verify_tip_us`: decode, check and insert (verify) one new share at the tip of the full
//!   chain; median over many tips.
//! - `chain_load_ms`: decode, check and verify the whole chain into a fresh tracker (startup).
//! - `hash_bound_us`: SHA-256d of the coinbase a tip verification rebuilds — the floor.
//! - `prepare_ms`: `prepare` on the best share (what the share worker does once per new best
//!   share: the whole PPLNS window walked); median.
//! - `template_us`: one miner's template from that prepared base (`WorkBase::template`, each
//!   request with another payout script); `generate_us`: the same requests through `generate`
//!   and the tracker's PPLNS cache; medians.
//!
//! Shares are mined at an easy target (mainnet's rules otherwise), so building the chain is fast.
#![allow(clippy::print_stdout, reason = "benchmark output")]

use std::time::Instant;

use bitcoin::hashes::{sha256d, Hash};
use sharechain::encode::Encode;
use sharechain::params::NetworkParams;
use sharechain::share::CheckedShare;
use sharechain::testkit::{build_chain, easy_params, next_share, p2wpkh, request};
use sharechain::{new_tracker, Share};

const CHAIN: usize = 8640;
const SCRIPTS: u32 = 200;
const TIPS: usize = 300;
const LOADS: usize = 5;

/// `NAME` from the environment, else `default` (e.g. `BENCH_TIPS=20` under a profiler).
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` the benchmark only runs as a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (chain_len, tips, load_reps) = if smoke {
        (300, 5, 1)
    } else {
        (CHAIN, TIPS, LOADS)
    };
    let params = easy_params(&NetworkParams::MAINNET, chain_len as u32, 200);
    let scripts: Vec<_> = (0..SCRIPTS).map(p2wpkh).collect();
    let t0 = Instant::now();
    let (mut builder, shares) = build_chain(params, chain_len, &scripts);
    println!(
        "built {chain_len} shares in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let wire: Vec<Vec<u8>> = shares.iter().map(|s| s.share().to_bytes()).collect();
    let now = u64::from(shares.last().expect("chain").share().share_info.timestamp) + 60;

    // Startup: decode, check and verify everything from bytes.
    let mut loads = Vec::new();
    let mut loaded = None;
    for _ in 0..env_or("BENCH_LOADS", load_reps) {
        let t = Instant::now();
        let mut tracker = new_tracker(params);
        for bytes in &wire {
            let share = CheckedShare::from_bytes(bytes, params, now).expect("valid share");
            tracker.insert(share).expect("inserts");
        }
        loads.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(tracker.chain().len(), chain_len);
        assert!(tracker.chain().is_verified(&shares[chain_len - 1].hash()));
        loaded = Some(tracker);
    }
    let mut tracker = loaded.expect("loaded");

    // Tips: mined by `builder`, verified by `tracker` from bytes.
    let mut tip_times = Vec::new();
    let mut hash_times = Vec::new();
    let mut parent = shares[chain_len - 1].hash();
    for i in 0..env_or("BENCH_TIPS", tips) {
        let ts = 1_700_000_000 + ((chain_len + i) as u32) * params.share_period;
        let share = next_share(
            &mut builder,
            params,
            Some(parent),
            scripts[i % scripts.len()].clone(),
            ts,
            i as u32,
        )
        .expect("builds");
        builder.insert(share.clone()).expect("builder inserts");
        let bytes = share.share().to_bytes();
        let t = Instant::now();
        let checked = CheckedShare::from_bytes(&bytes, params, u64::from(ts)).expect("valid");
        let changes = tracker.insert(checked).expect("inserts");
        tip_times.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(changes.verified, vec![share.hash()], "tip verified");
        parent = share.hash();

        // The floor: double SHA-256 of the coinbase this verification rebuilt.
        let coinbase = rebuilt_coinbase(&mut tracker, params, share.share());
        let reps = 50;
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(sha256d::Hash::hash(std::hint::black_box(&coinbase)));
        }
        hash_times.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(reps));
    }
    let coinbase_len = rebuilt_coinbase(&mut tracker, params, shares[chain_len - 1].share()).len();
    println!("coinbase {coinbase_len} bytes, {} payouts", SCRIPTS);
    let (tip, load, hash) = (median(tip_times), median(loads), median(hash_times));

    // Work building on the best share: prepared once, then one template per miner.
    let best = tracker.best();
    let mut prepare_times = Vec::new();
    let mut base = None;
    for _ in 0..env_or("BENCH_PREPARES", 9) {
        let t = Instant::now();
        base = Some(sharechain::prepare(tracker.chain(), params, best).expect("prepares"));
        prepare_times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let base = base.expect("prepared");
    let ts = 1_700_000_000 + ((chain_len + tips + 1) as u32) * params.share_period;
    let requests: Vec<_> = (0..SCRIPTS)
        .map(|i| request(params, best, p2wpkh(i + 10_000 * (i % 2)), ts, i))
        .collect();
    let mut template_times = Vec::new();
    let mut generate_times = Vec::new();
    for req in &requests {
        let t = Instant::now();
        let from_base = base.template(req).expect("builds");
        template_times.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let (chain, verifier) = tracker.parts();
        let generated =
            sharechain::generate(chain, verifier.pplns_mut(), params, req).expect("builds");
        generate_times.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(
            from_base, generated,
            "the prepared base builds what generate builds"
        );
    }
    let (prep, tmpl, gen) = (
        median(prepare_times),
        median(template_times),
        median(generate_times),
    );
    println!(
        "RESULT verify_tip_us={tip:.1} chain_load_ms={load:.0} hash_bound_us={hash:.2} \
         prepare_ms={prep:.2} template_us={tmpl:.1} generate_us={gen:.1}"
    );
}

fn rebuilt_coinbase(
    tracker: &mut sharechain::Tracker,
    params: &'static NetworkParams,
    share: &Share,
) -> Vec<u8> {
    let req = sharechain::ShareRequest::of_share(share);
    let (chain, verifier) = tracker.parts();
    let template =
        sharechain::generate(chain, verifier.pplns_mut(), params, &req).expect("rebuilds");
    template.coinbase_tx(share.last_txout_nonce)
}
