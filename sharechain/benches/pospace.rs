//! Chia PoS v1 verification speed against chiapos's C++ verifier, on the same proofs, same run.
//!
//! Ours: single thread, every valid proof of `tests/vectors/chia/*.txt`, one pass timed per
//! repetition, median over repetitions of (pass time / proofs). Reference: `python3` with chiapos's
//! `Verifier().validate_proof` on the same proofs, timed inside Python the same way (installed with
//! `pip install chiapos==2.0.12` when missing; reported as missing if that fails).
//!
//! Last line: `RESULT pos_verify_us=… pos_verify_ref_us=… proofs=…`.

#![allow(clippy::print_stdout, reason = "benchmark output")]

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use sharechain::pospace::{validate_batch, validate_proof, VectorLine};

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
    match reference {
        Some(r) => {
            println!("chiapos: {r:.2} us/proof (Python binding, same proofs)");
            println!("ratio:   {:.3}", ours / r);
            println!(
                "RESULT pos_verify_us={ours:.2} pos_verify_ref_us={r:.2} pos_verify_batch_us={batch:.2} proofs={n}"
            );
        }
        None => {
            println!("chiapos: missing (python3 with chiapos not available)");
            println!("RESULT pos_verify_us={ours:.2} pos_verify_batch_us={batch:.2} proofs={n}");
        }
    }
}

/// The package directory: cargo's at run time (a binary built in another checkout that shares
/// the target directory must read this checkout's files), else the one it was built in.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
