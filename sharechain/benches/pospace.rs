//! Chia PoS v1 verification speed against chiapos's C++ verifier, on the same proofs, same run.
//!
//! Ours: single thread, every valid proof of `tests/vectors/chia/*.txt`, one pass timed per
//! repetition, median over repetitions of (pass time / proofs). Reference: `python3` with chiapos's
//! `Verifier().validate_proof` on the same proofs, timed inside Python the same way (installed with
//! `pip install chiapos==2.0.12` when missing; reported as missing if that fails).
//!
//! PoSpace shares (same run): `pospace_share_verify_us`, inserting (verifying) one share at the
//! tip of a full window, median over tips; `bls_verify_us`, chia-bls verifying one share
//! signature alone (the floor of a tip verification); `pospace_window_load_ms`, checking and
//! inserting a whole window into a fresh tracker (proofs over threads, signatures in one batch).
//! Shares are built from the chiapos proofs of `tests/vectors/chia/pospace_share_proofs_k18.csv` on regtest
//! constants with a mainnet-sized window.
//!
//! Last line: `RESULT pos_verify_us=… pos_verify_ref_us=… proofs=… pospace_share_verify_us=…
//! bls_verify_us=… pospace_window_load_ms=… window=…`.

#![allow(clippy::print_stdout, reason = "benchmark output")]

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use sharechain::pospace::{validate_batch, validate_proof, VectorLine};
use sharechain::pospace_share::testkit::ProofBook;
use sharechain::pospace_share::{insert_many, new_pospace_tracker, ChiaNetwork, PoSpaceShare};

const REPS: usize = 31;

const REFERENCE: &str = r#"
import sys, time, statistics
from chiapos import Verifier
proofs = []
for line in open(sys.argv[1]):
    f = [s.strip() for s in line.split(",")]
    if len(f) >= 4:
        proofs.append((bytes.fromhex(f[0]), int(f[1]), bytes.fromhex(f[2]), bytes.fromhex(f[3])))
v = Verifier()
for p in proofs:
    assert v.validate_proof(*p) is not None
reps = int(sys.argv[2])
per_proof = []
for _ in range(reps):
    t = time.perf_counter()
    for p in proofs:
        v.validate_proof(*p)
    per_proof.append((time.perf_counter() - t) / len(proofs) * 1e6)
print(statistics.median(per_proof))
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn chiapos_us(file: &std::path::Path) -> Option<f64> {
    let run = || {
        let out = Command::new("python3")
            .arg("-c")
            .arg(REFERENCE)
            .arg(file)
            .arg(REPS.to_string())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8(out.stdout)
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
    };
    run().or_else(|| {
        println!("chiapos not importable; trying pip install chiapos==2.0.12");
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "chiapos==2.0.12"])
            .status();
        run()
    })
}

fn main() {
    let dir = manifest_dir().join("tests/vectors/chia");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("vector directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut text = String::new();
    for f in &files {
        text.push_str(&std::fs::read_to_string(f).expect("vector file"));
        text.push('\n');
    }
    let lines: Vec<VectorLine> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| VectorLine::parse(l).expect("vector line"))
        .collect();
    let proofs: Vec<_> = lines.iter().map(VectorLine::as_proof).collect();
    for (p, l) in proofs.iter().zip(&lines) {
        assert_eq!(p.validate().ok(), l.expected_quality, "vector must verify");
    }
    let n = proofs.len();
    // `cargo test --all-targets` runs this binary without `--bench`: the check above is the test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("pospace bench: {n} vectors verify (run with `cargo bench` to time)");
        let s = share_figures(64, 5, 1);
        println!("pospace share smoke run: {s:?}");
        return;
    }

    let mut per_proof = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t = Instant::now();
        for p in &proofs {
            std::hint::black_box(validate_proof(p.plot_id, p.k, p.challenge, p.proof).is_ok());
        }
        per_proof.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    let ours = median(per_proof);

    // A corrupted proof (first byte changed) is rejected, usually at table 2.
    let corrupted: Vec<Vec<u8>> = proofs
        .iter()
        .map(|p| {
            let mut b = p.proof.to_vec();
            b[0] ^= 1;
            b
        })
        .collect();
    let mut reject = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t = Instant::now();
        for (p, b) in proofs.iter().zip(&corrupted) {
            std::hint::black_box(validate_proof(p.plot_id, p.k, p.challenge, b).is_err());
        }
        reject.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    let reject = median(reject);

    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut batch = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t = Instant::now();
        std::hint::black_box(validate_batch(&proofs, threads));
        batch.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    let batch = median(batch);

    // The reference reads the same proofs from one file.
    let all = std::env::temp_dir().join(format!("pospace-bench-{}.txt", std::process::id()));
    std::fs::write(&all, &text).expect("temp file");
    let reference = chiapos_us(&all);
    let _ = std::fs::remove_file(&all);

    println!("proofs: {n} valid, k {:?}", {
        let mut ks: Vec<u8> = lines.iter().map(|l| l.k).collect();
        ks.sort_unstable();
        ks.dedup();
        ks
    });
    println!("ours:    {ours:.2} us/proof (single thread, median of {REPS} passes)");
    println!("reject:  {reject:.2} us/proof (first byte corrupted)");
    println!("batch:   {batch:.2} us/proof wall ({threads} threads)");
    let reference = match reference {
        Some(r) => {
            println!("chiapos: {r:.2} us/proof (Python binding, same proofs)");
            println!("ratio:   {:.3}", ours / r);
            format!(" pos_verify_ref_us={r:.2}")
        }
        None => {
            println!("chiapos: missing (python3 with chiapos not available)");
            String::new()
        }
    };
    let s = share_figures(
        env_or("BENCH_WINDOW", WINDOW),
        env_or("BENCH_TIPS", TIPS),
        env_or("BENCH_LOADS", LOADS),
    );
    println!(
        "share:   {:.1} us at the tip ({:.2} x bls {:.1} us; decode {:.1} us); window of {} in {:.0} ms ({:.3} x window x bls)",
        s.tip_us,
        s.tip_us / s.bls_us,
        s.bls_us,
        s.decode_us,
        s.window,
        s.load_ms,
        s.load_ms * 1e3 / (s.window as f64 * s.bls_us)
    );
    println!(
        "RESULT pos_verify_us={ours:.2}{reference} pos_verify_batch_us={batch:.2} proofs={n} pospace_share_verify_us={:.1} bls_verify_us={:.1} pospace_window_load_ms={:.0} pospace_share_decode_us={:.1} window={}",
        s.tip_us, s.bls_us, s.load_ms, s.decode_us, s.window
    );
}

/// Shares in the loaded window (mainnet's) and tips verified on top of it.
const WINDOW: usize = 8640;
const TIPS: usize = 200;
const LOADS: usize = 5;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug)]
struct ShareFigures {
    tip_us: f64,
    bls_us: f64,
    decode_us: f64,
    load_ms: f64,
    window: usize,
}

/// Builds `window + tips` shares in a line, loads the window `loads` times into fresh trackers,
/// then verifies the tips one by one on the last one; and times chia-bls on one signature.
fn share_figures(window: usize, tips: usize, loads: usize) -> ShareFigures {
    let book = ProofBook::parse(
        &std::fs::read_to_string(
            manifest_dir().join("tests/vectors/chia/pospace_share_proofs_k18.csv"),
        )
        .expect("proofs file"),
    );
    assert!(window + tips <= book.proofs.len(), "not enough proofs");
    let network: &'static ChiaNetwork = Box::leak(Box::new(ChiaNetwork {
        window: window as u32,
        ..ChiaNetwork::REGTEST
    }));
    // One share per share period keeps the retarget at the initial difficulty.
    let t = Instant::now();
    let mut shares: Vec<PoSpaceShare> = Vec::with_capacity(window + tips);
    let mut prev = None;
    for i in 0..window + tips {
        let ts = 1_700_000_000 + i as u64 * u64::from(network.share_period);
        let content = book.content(
            i,
            prev,
            network.initial_difficulty,
            ts,
            [(i % 200) as u8; 32],
        );
        let share = book.share(&content, network);
        prev = Some(share.hash());
        shares.push(share);
    }
    println!(
        "built {} shares in {:.0} ms",
        shares.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let new_tracker = || {
        let mut tracker = new_pospace_tracker(network);
        for i in 0..window + tips {
            tracker
                .verifier_mut()
                .signage_points_mut()
                .insert(book.signage_point(i));
        }
        tracker
    };
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    // A shared machine's load drifts: one-signature verifications are sampled right before each
    // window load too, so both figures come from the same stretch of time.
    let mut bls = Vec::new();
    let time_bls = |share: &PoSpaceShare, bls: &mut Vec<f64>| {
        let c = share.content();
        let t = Instant::now();
        let ok = chia_bls::verify(
            share.signature(),
            &c.proof_of_space.plot_public_key,
            share.message(),
        );
        bls.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(ok);
    };
    let mut load = Vec::new();
    let mut tracker = None;
    for _ in 0..loads.max(1) {
        for share in shares.iter().take(tips.clamp(1, 50)) {
            time_bls(share, &mut bls);
        }
        let mut fresh = new_tracker();
        let batch = shares[..window].to_vec();
        let t = Instant::now();
        let results = insert_many(&mut fresh, batch, threads);
        load.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(results
            .iter()
            .all(|r| r.as_ref().is_ok_and(|c| c.invalid.is_empty())));
        assert_eq!(fresh.best(), Some(shares[window - 1].hash()));
        tracker = Some(fresh);
    }
    let mut tracker = tracker.expect("loaded");
    let mut tip = Vec::new();
    let mut decode = Vec::new();
    for share in &shares[window..] {
        let bytes = share.to_bytes();
        let t = Instant::now();
        let decoded = PoSpaceShare::decode(&bytes, network).expect("decodes");
        decode.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let changes = tracker.insert(decoded).expect("inserts");
        tip.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(changes.verified, vec![share.hash()]);
        time_bls(share, &mut bls);
    }
    ShareFigures {
        tip_us: median(tip),
        bls_us: median(bls),
        decode_us: median(decode),
        load_ms: median(load),
        window,
    }
}

/// The package directory: cargo's at run time (a binary built in another checkout that shares
/// the target directory must read this checkout's files), else the one it was built in.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
